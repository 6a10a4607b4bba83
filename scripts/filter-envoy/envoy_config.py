"""Writes a minimal Envoy 1.40 bootstrap (JSON) that loads the Portcullis filter.

Usage: envoy_config.py OUT.json --wasm FILE --admin PORT --backend PORT
         --access-log FILE [--listener NAME:PORT:POLICY_FILE[:tls]]...
Every listener is on 127.0.0.1 and gets its own plugin (named NAME) whose
configuration is the policy file's text, passed inline as a StringValue.
A `tls` listener uses cert.pem/key.pem next to OUT.json.
"""
import argparse
import json
import os


def listener(name, port, policy_text, wasm, access_log, tls, outdir):
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name,
        # No `server: envoy` fingerprint added to responses.
        "server_header_transformation": "PASS_THROUGH",
        # REQUIRED for Portcullis. The `source.address` property is Envoy's
        # downstream remote address, which with the default `false` Envoy
        # takes from the last X-Forwarded-For entry, i.e. from the client.
        # With `true` (and xff_num_trusted_hops 0, no original IP detection
        # extension) it is the TCP peer, as the policy's `peer` means.
        "use_remote_address": True,
        # Leave X-Forwarded-For as the client sent it: the policy walks it
        # itself. Appending would add the peer, or for a 127.0.0.1 peer
        # Envoy's own address, which is not a trusted proxy.
        "skip_xff_append": True,
        # Known gap: with use_remote_address Envoy overwrites
        # X-Forwarded-Proto with its own connection's scheme before any
        # filter runs, so `trust_forwarded_proto` never sees a proxy's value.
        "access_log": [{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": access_log,
                "log_format": {"text_format_source": {"inline_string":
                    name + " %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %RESPONSE_CODE% "
                    "%RESPONSE_CODE_DETAILS% trace=[%FILTER_STATE(wasm.portcullis.trace:PLAIN)%]\n"}},
            },
        }],
        "route_config": {"virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}],
        }]},
        "http_filters": [
            {"name": "envoy.filters.http.wasm", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": name,
                    "root_id": "portcullis",
                    "vm_config": {
                        "vm_id": "portcullis",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm}},
                    },
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": policy_text,
                    },
                },
            }},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    chain = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
    if tls:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {"tls_certificates": [{
                    "certificate_chain": {"filename": os.path.join(outdir, "cert.pem")},
                    "private_key": {"filename": os.path.join(outdir, "key.pem")},
                }]},
            },
        }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [chain],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--admin", type=int, required=True)
    ap.add_argument("--backend", type=int, required=True)
    ap.add_argument("--access-log", required=True)
    ap.add_argument("--listener", action="append", default=[])
    a = ap.parse_args()
    outdir = os.path.dirname(os.path.abspath(a.out))
    listeners = []
    for spec in a.listener:
        parts = spec.split(":")
        name, port, policy = parts[0], int(parts[1]), parts[2]
        tls = len(parts) > 3 and parts[3] == "tls"
        with open(policy, encoding="utf-8") as f:
            text = f.read()
        listeners.append(listener(name, port, text, a.wasm, a.access_log, tls, outdir))
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": a.admin}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": [{
                "name": "backend", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": a.backend}}}},
                ]}]},
            }],
        },
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(bootstrap, f, indent=1)


if __name__ == "__main__":
    main()
