//! One configuration problem: which object, which field, and why.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The resource kind, e.g. `IPAddressPool`.
    pub kind: &'static str,
    pub name: String,
    /// The field path inside the object, e.g. `spec.addresses[1]`.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(kind: &'static str, name: &str, field: &str, reason: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}
