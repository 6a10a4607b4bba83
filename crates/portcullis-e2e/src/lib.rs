//! End-to-end proof of the Portcullis filter in real Envoy.
