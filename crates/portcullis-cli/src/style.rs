//! Colours on a terminal (off with `NO_COLOR` or when piped).

use std::io::IsTerminal as _;

pub(crate) struct Style {
    on: bool,
}

impl Style {
    pub(crate) fn detect() -> Style {
        Style {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub(crate) fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    pub(crate) fn yellow(&self, s: &str) -> String {
        self.paint("1;33", s)
    }
    pub(crate) fn green(&self, s: &str) -> String {
        self.paint("1;32", s)
    }
    pub(crate) fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}
