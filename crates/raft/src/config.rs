//! The settings of one node, and the relations between them that `validate` enforces.

use thiserror::Error;

use crate::ids::NodeId;

/// A heartbeat must fit this many times into the minimum election timeout, so that a follower
/// only suspects the leader after missing several heartbeats (one lost, one late) in a row.
pub const HEARTBEATS_PER_ELECTION_TIMEOUT_MIN: u64 = 3;

/// The longest minimum election timeout accepted (one hour): beyond it failover no longer means
/// anything, and keeping it small keeps every deadline sum far from overflow.
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 3_600_000;

/// The largest pipelining window accepted: a window is a ring of this many slots per follower,
/// and more than this many messages in flight on one link only fills buffers.
pub const INFLIGHT_MSGS_MAX: usize = 1 << 16;

/// Settings of one Raft node. Build with [`Config::new`] (defaults) and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's identity; must be one of the voters given to `Node::new`.
    pub id: NodeId,
    /// Minimum election timeout; each election deadline is drawn from `[min, 2*min)` with the
    /// node's seeded RNG. Also the leader's check-quorum period and the followers' lease length.
    pub election_timeout_ms: u64,
    /// How often a leader sends heartbeats; must be well below the election timeout.
    pub heartbeat_interval_ms: u64,
    /// Most entries in one AppendEntries message (at least one is always sent).
    pub max_entries_per_msg: usize,
    /// Most payload bytes in one AppendEntries message, counted with a fixed per-entry overhead;
    /// a single entry larger than this is still sent, alone.
    pub max_bytes_per_msg: usize,
    /// Most AppendEntries messages in flight to one follower in replicate mode (pipelining).
    pub max_inflight_msgs: usize,
    /// Run a pre-vote round (thesis 9.6) before a real election, so a node that was partitioned
    /// away cannot force a term change on a healthy cluster.
    pub prevote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down
    /// (thesis 6.2); also makes a leader reject (pre)votes while it holds its lease.
    pub check_quorum: bool,
    /// Tell followers at once when the commit index advances, with an extra (empty)
    /// AppendEntries round (etcd's behaviour). Off, the next AppendEntries or heartbeat carries
    /// it (thesis 3.5): followers apply up to a heartbeat interval later, but a lightly loaded
    /// cluster exchanges half the messages per write. Only followers' apply latency differs;
    /// nothing a client sees does, since the leader answers writes and reads.
    pub broadcast_commit: bool,
    /// Leader reads on a lease (thesis 6.4.1): while a majority acknowledged a heartbeat round
    /// sent less than [`Config::lease_ms`] ago, a ReadIndex read is ready at once, without a
    /// round of its own. Safe only while members' clocks run at rates within the lease margin
    /// of each other; needs `check_quorum`, and every member must have it (a voter that has it
    /// also refuses votes for an election timeout after it starts, so a restart cannot cut a
    /// lease short). Off by default: ReadIndex waits for a round.
    pub lease_reads: bool,
    /// Followers serve linearizable reads by asking the leader for a read index
    /// (`ReadIndexRequest`) instead of refusing them.
    pub follower_reads: bool,
}

/// The part of the election timeout a lease gives up, for clocks that run at different rates:
/// a lease lasts `election_timeout_ms * (1 - 1/LEASE_MARGIN_DIVISOR)` from the send time of the
/// round a majority acknowledged (10%: rates may differ by up to about 10%; real clocks differ
/// by less than 0.1%).
pub const LEASE_MARGIN_DIVISOR: u64 = 10;

/// Default minimum election timeout: ten heartbeats, as etcd recommends for a LAN.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 1000;
/// Default heartbeat interval: frequent enough for fast failure detection, rare enough to be cheap.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// Default entry cap per message: bounds the work a follower does per message.
pub const DEFAULT_MAX_ENTRIES_PER_MSG: usize = 1024;
/// Default byte cap per message (256 KiB): large enough to amortise framing, small enough that a
/// heartbeat queued behind it on the same connection is not delayed noticeably.
pub const DEFAULT_MAX_BYTES_PER_MSG: usize = 256 * 1024;
/// Default pipelining window: with the byte cap above, at most 16 MiB in flight per follower.
pub const DEFAULT_MAX_INFLIGHT_MSGS: usize = 64;

impl Config {
    /// The default settings for node `id`: prevote and check-quorum on, commit carried lazily.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            max_entries_per_msg: DEFAULT_MAX_ENTRIES_PER_MSG,
            max_bytes_per_msg: DEFAULT_MAX_BYTES_PER_MSG,
            max_inflight_msgs: DEFAULT_MAX_INFLIGHT_MSGS,
            prevote: true,
            check_quorum: true,
            broadcast_commit: false,
            lease_reads: false,
            follower_reads: false,
        }
    }

    /// How long a lease lasts from the send time of the heartbeat round that a majority
    /// acknowledged: the minimum election timeout less the clock-drift margin. No follower
    /// that acknowledged that round votes for another candidate before the minimum election
    /// timeout has passed on its own clock since it received it.
    pub fn lease_ms(&self) -> u64 {
        self.election_timeout_ms - self.election_timeout_ms / LEASE_MARGIN_DIVISOR
    }

    /// Checks every setting and every relation between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.election_timeout_ms == 0 {
            return Err(ConfigError::ZeroElectionTimeout);
        }
        if self.election_timeout_ms > ELECTION_TIMEOUT_MS_MAX {
            return Err(ConfigError::ElectionTimeoutTooLong {
                election_timeout_ms: self.election_timeout_ms,
            });
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::ZeroHeartbeatInterval);
        }
        // The product cannot overflow: election_timeout_ms is at most ELECTION_TIMEOUT_MS_MAX.
        let needed = self
            .heartbeat_interval_ms
            .saturating_mul(HEARTBEATS_PER_ELECTION_TIMEOUT_MIN);
        if needed > self.election_timeout_ms {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat_interval_ms: self.heartbeat_interval_ms,
                election_timeout_ms: self.election_timeout_ms,
            });
        }
        if self.max_entries_per_msg == 0 {
            return Err(ConfigError::ZeroLimit("max_entries_per_msg"));
        }
        if self.max_bytes_per_msg == 0 {
            return Err(ConfigError::ZeroLimit("max_bytes_per_msg"));
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError::ZeroLimit("max_inflight_msgs"));
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        if self.max_inflight_msgs > INFLIGHT_MSGS_MAX {
            return Err(ConfigError::TooManyInflight {
                max_inflight_msgs: self.max_inflight_msgs,
            });
        }
        Ok(())
    }
}

/// A setting, or a relation between settings, that `Config::validate` refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `election_timeout_ms` is 0.
    #[error("election_timeout_ms must be positive")]
    ZeroElectionTimeout,
    /// `election_timeout_ms` is above [`ELECTION_TIMEOUT_MS_MAX`].
    #[error("election_timeout_ms {election_timeout_ms} exceeds {ELECTION_TIMEOUT_MS_MAX}")]
    ElectionTimeoutTooLong {
        /// The refused value.
        election_timeout_ms: u64,
    },
    /// `heartbeat_interval_ms` is 0.
    #[error("heartbeat_interval_ms must be positive")]
    ZeroHeartbeatInterval,
    /// Heartbeats do not fit [`HEARTBEATS_PER_ELECTION_TIMEOUT_MIN`] times into an election timeout.
    #[error(
        "heartbeat_interval_ms {heartbeat_interval_ms} must be at most 1/{HEARTBEATS_PER_ELECTION_TIMEOUT_MIN} of election_timeout_ms {election_timeout_ms}"
    )]
    HeartbeatTooSlow {
        /// The heartbeat interval given.
        heartbeat_interval_ms: u64,
        /// The election timeout given.
        election_timeout_ms: u64,
    },
    /// A limit that must be at least 1 is 0; names the setting.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// `lease_reads` without `check_quorum`: nothing would stop followers from electing a new
    /// leader during the lease.
    #[error("lease_reads needs check_quorum")]
    LeaseWithoutCheckQuorum,
    /// `max_inflight_msgs` is above [`INFLIGHT_MSGS_MAX`].
    #[error("max_inflight_msgs {max_inflight_msgs} exceeds {INFLIGHT_MSGS_MAX}")]
    TooManyInflight {
        /// The refused value.
        max_inflight_msgs: usize,
    },
}
