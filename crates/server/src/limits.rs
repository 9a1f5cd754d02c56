//! Budgets of the client side: how many client connections a member serves, what one
//! connection may make it hold (buffered replies, pipelined commands, time), and what all of
//! them together may (see [`crate::client_budget`]).
//!
//! Every setting has a default here, a key in the cluster file's `[client_limits]` table, and a
//! `raftfs serve` flag (crates/raftfs, `ClientLimitArgs`):
//!
//! ```toml
//! [client_limits]                 # optional, every key too
//! # max_connections = 9000        # default: computed from the descriptor limit
//! reply_buffer_bytes = 2097152    # replies buffered but not yet sent, per connection (2 MiB)
//! pipeline_bytes = 2097152        # commands read but not yet answered, per connection (2 MiB)
//! total_bytes = 268435456         # both of those, summed over all connections (256 MiB)
//! partial_command_timeout_s = 120 # a half-sent command is closed this long after its first byte
//! idle_timeout_s = 3600           # a connection with nothing in flight is closed after this
//! ```
//!
//! At start [`raise_descriptor_limit`] raises the soft `RLIMIT_NOFILE` to the hard limit, and
//! [`connection_cap`] derives the connection cap from it, keeping [`DESCRIPTORS_RESERVED`]
//! descriptors for the log, snapshots, peers and HTTP: a member that runs out of descriptors
//! cannot roll its log segment and stops, so clients must never be able to take them all.

use std::time::Duration;

use serde::Deserialize;

/// Default bytes of encoded replies a connection may have waiting to be sent before the server
/// stops reading its commands: two files of the default maximum size, so one large reply can
/// sit in the socket while the next is prepared, and a client that never reads holds at most
/// about this much (TCP pushes back on it from then on).
pub const REPLY_BUFFER_BYTES_DEFAULT: usize = 2 << 20;

/// Default bytes of commands a connection may have read but not yet answered before the server
/// stops reading more: room for a couple of maximum-size writes (so they share a commit) or
/// thousands of small commands. One command is always admitted, however large.
pub const PIPELINE_BYTES_DEFAULT: usize = 2 << 20;

/// Default seconds a command may take to arrive, counted from its first byte: generous for a
/// person typing into telnet, short enough that a client trickling a command never ends it.
pub const PARTIAL_COMMAND_TIMEOUT_S_DEFAULT: u64 = 120;

/// Default seconds a connection may sit with nothing in flight (no command half read, none
/// unanswered, no reply unsent) before it is closed: an hour, so a telnet session left open
/// while reading the docs survives, while connections whose client vanished are reclaimed.
pub const IDLE_TIMEOUT_S_DEFAULT: u64 = 3600;

/// Descriptors kept out of the client cap, at most half the limit: log segments, snapshot
/// files, the peer transport (two connections per member and the snapshot lane), HTTP's 64
/// connections, refused clients being answered, standard streams and the runtime's own.
pub const DESCRIPTORS_RESERVED: u64 = 1024;

/// The computed cap never exceeds this, however many descriptors there are: each connection
/// may hold its budgets of memory.
pub const CONNECTIONS_CEILING: usize = 100_000;

/// The client-side budgets (the cluster file's `[client_limits]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Client connections served at once; `None` computes it from the descriptor limit (see
    /// [`connection_cap`]). A client beyond it gets `ERR_INTERNAL` and is closed.
    pub max_connections: Option<usize>,
    /// Encoded reply bytes one connection may have unsent before its commands are not read.
    pub reply_buffer_bytes: usize,
    /// Command bytes one connection may have read and not yet answered before more are not
    /// read.
    pub pipeline_bytes: usize,
    /// Command bytes unanswered plus reply bytes unsent, over all connections together, at
    /// which connections with something in flight stop reading commands.
    pub total_bytes: usize,
    /// Seconds from a command's first byte until, still incomplete, its connection is closed.
    pub partial_command_timeout_s: u64,
    /// Seconds a connection with nothing in flight, or whose client reads none of its unsent
    /// replies, stays open.
    pub idle_timeout_s: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: None,
            reply_buffer_bytes: REPLY_BUFFER_BYTES_DEFAULT,
            pipeline_bytes: PIPELINE_BYTES_DEFAULT,
            total_bytes: crate::client_budget::TOTAL_BYTES_DEFAULT,
            partial_command_timeout_s: PARTIAL_COMMAND_TIMEOUT_S_DEFAULT,
            idle_timeout_s: IDLE_TIMEOUT_S_DEFAULT,
        }
    }
}

/// Why the client limits cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A setting is zero or otherwise out of range.
    #[error("client limit {name} = {value} is out of range: {why}")]
    OutOfRange {
        /// The setting's TOML key.
        name: &'static str,
        /// Its value.
        value: u64,
        /// What it must be.
        why: &'static str,
    },
    /// More connections were asked for than there are descriptors to give them.
    #[error(
        "max_connections = {asked} needs more file descriptors than the limit allows: the soft \
         RLIMIT_NOFILE is {nofile} and {reserved} are kept for the log, snapshots, peers and \
         HTTP, so at most {allowed} (raise the hard limit, e.g. `ulimit -Hn`, or lower \
         max_connections)"
    )]
    TooManyConnections {
        /// The cap configured.
        asked: usize,
        /// The descriptor limit in force.
        nofile: u64,
        /// Descriptors kept back.
        reserved: u64,
        /// The largest cap allowed.
        allowed: u64,
    },
}

impl ClientLimits {
    /// Checks every setting's range (the connection cap is checked against the descriptor
    /// limit at start, by [`connection_cap`]).
    pub fn validate(&self) -> Result<(), LimitsError> {
        let check = |name, value: u64, min: u64, why| {
            if value < min {
                Err(LimitsError::OutOfRange { name, value, why })
            } else {
                Ok(())
            }
        };
        check(
            "max_connections",
            self.max_connections.map_or(1, |n| n as u64),
            1,
            "at least 1",
        )?;
        check(
            "reply_buffer_bytes",
            self.reply_buffer_bytes as u64,
            1024,
            "at least 1024 bytes",
        )?;
        check(
            "pipeline_bytes",
            self.pipeline_bytes as u64,
            1024,
            "at least 1024 bytes",
        )?;
        check(
            "total_bytes",
            self.total_bytes as u64,
            1024,
            "at least 1024 bytes",
        )?;
        check(
            "partial_command_timeout_s",
            self.partial_command_timeout_s,
            1,
            "at least 1 second",
        )?;
        check(
            "idle_timeout_s",
            self.idle_timeout_s,
            1,
            "at least 1 second",
        )
    }

    /// The partial-command timeout as a duration.
    pub fn partial_command_timeout(&self) -> Duration {
        Duration::from_secs(self.partial_command_timeout_s)
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_s)
    }
}

/// Descriptors kept back from clients under a limit of `nofile`.
fn reserved(nofile: u64) -> u64 {
    DESCRIPTORS_RESERVED.min(nofile / 2)
}

/// The client connection cap under a soft descriptor limit of `nofile`: the configured one if it
/// fits below `nofile` minus the reserve, else an error; by default half of what the reserve
/// leaves (the other half for peer-port and HTTP clients, and connections being refused), at
/// most [`CONNECTIONS_CEILING`]. With the hard limit of 20000 here that is 9488.
pub fn connection_cap(limits: &ClientLimits, nofile: u64) -> Result<usize, LimitsError> {
    let reserved = reserved(nofile);
    let allowed = nofile.saturating_sub(reserved);
    match limits.max_connections {
        Some(asked) if asked as u64 > allowed => Err(LimitsError::TooManyConnections {
            asked,
            nofile,
            reserved,
            allowed,
        }),
        Some(asked) => Ok(asked),
        None => Ok(usize::try_from(allowed / 2)
            .unwrap_or(usize::MAX)
            .clamp(1, CONNECTIONS_CEILING)),
    }
}

/// The descriptor limit before and after [`raise_descriptor_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit the process started with.
    pub was: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (or, if the hard limit is unlimited, to the
/// kernel's `nr_open`), so the cap can be set well below a large limit rather than the small
/// default soft one. A refusal keeps the soft limit as it was; only an unreadable limit is an
/// error.
pub fn raise_descriptor_limit() -> std::io::Result<DescriptorLimit> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    let target = if hard == nix::sys::resource::RLIM_INFINITY {
        // Linux refuses a soft limit above nr_open, and "unlimited" is above it.
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(soft)
    } else {
        hard
    };
    let mut now = soft;
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        now = target;
    }
    Ok(DescriptorLimit {
        was: soft,
        soft: now,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_room_below_the_descriptor_limit() {
        let limits = ClientLimits::default();
        assert_eq!(connection_cap(&limits, 20_000), Ok(9488));
        assert!(connection_cap(&limits, 20_000).unwrap_or(0) >= 5000);
        assert_eq!(connection_cap(&limits, 1024), Ok(256));
        assert_eq!(connection_cap(&limits, 1 << 30), Ok(CONNECTIONS_CEILING));
        assert_eq!(connection_cap(&limits, 0), Ok(1));
    }

    #[test]
    fn a_cap_above_the_descriptors_is_refused_clearly() {
        let limits = ClientLimits {
            max_connections: Some(19_500),
            ..ClientLimits::default()
        };
        let err = connection_cap(&limits, 20_000).unwrap_err();
        assert!(err.to_string().contains("at most 18976"), "{err}");
        let fits = ClientLimits {
            max_connections: Some(18_976),
            ..limits
        };
        assert_eq!(connection_cap(&fits, 20_000), Ok(18_976));
    }

    #[test]
    fn zero_settings_are_refused() {
        let zero = ClientLimits {
            idle_timeout_s: 0,
            ..ClientLimits::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn the_toml_table_has_defaults_for_every_key() {
        let limits: ClientLimits = toml::from_str("idle_timeout_s = 10").unwrap_or_default();
        assert_eq!(limits.idle_timeout_s, 10);
        assert_eq!(limits.pipeline_bytes, PIPELINE_BYTES_DEFAULT);
        assert!(toml::from_str::<ClientLimits>("idle = 1").is_err());
    }
}
