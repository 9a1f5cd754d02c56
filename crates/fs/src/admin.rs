//! Administrative commands on the client port: the cluster's membership and its leadership,
//! and backups. They are not file commands: the replica driver answers them, the store never
//! sees them.
//!
//! ```text
//! members\r\n                                -> MEMBERS N\r\n then N lines:
//!                                               MEMBER ID voter|learner leader|follower PEER CLIENT HTTP|-\r\n
//! members local\r\n                          -> MEMBERS N\r\n ... (as above, answered by any member)
//! member-add ID PEER CLIENT HTTP|-\r\n        -> OK INDEX     (added as a learner)
//! member-promote ID\r\n                      -> OK INDEX     (a caught-up learner becomes a voter)
//! member-remove ID\r\n                       -> OK INDEX
//! transfer-leader [ID]\r\n                   -> OK ID        (the new leader)
//! snapshot\r\n                               -> SNAPSHOT INDEX TERM NUMBYTES CRC32C\r\n<NUMBYTES bytes>\r\n
//!                                               (a backup: a snapshot file of the leader's store)
//! any of them: ERR_MEMBER REASON\r\n | ERR_REDIRECT HOST:PORT\r\n | ERR_INTERNAL\r\n
//!               (but `members local`, which always answers MEMBERS)
//! ```
//!
//! `members` is the leader's view (a follower redirects, a member that knows no leader answers
//! `ERR_INTERNAL`). `members local` is answered at once by whichever member gets it, leader or
//! not, with the configuration in force on that member, the `leader` flag naming the member it
//! believes leads (none, if it knows no leader): what `raftfs status` shows when there is no
//! leader to ask. It never redirects or waits, so it may be behind the leader's.
//!
//! `OK INDEX` is sent once the change has committed (it is then in force on the leader);
//! a malformed line gets `ERR_CMD_ERR`, like any other. `snapshot` is answered by the leader
//! after a read barrier (ReadIndex), so the backup holds every write acknowledged before the
//! command was sent; its bytes are a whole snapshot file (docs/backup.md), INDEX and TERM are
//! the last entry it covers, CRC32C (decimal) is the checksum the file ends with.

use crate::codec::ParseError;

/// An administrative command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// List the configuration in force on the leader (a follower redirects).
    Members,
    /// List the configuration in force on the member that answers, as it sees it (any member
    /// answers at once, leader or not).
    MembersLocal,
    /// Add member `id` as a learner.
    AddMember {
        /// The new member's id (positive).
        id: u64,
        /// Its peer address.
        peer: String,
        /// Its client address.
        client: String,
        /// Its HTTP address, if it serves one.
        http: Option<String>,
    },
    /// Make learner `id` a voter.
    Promote {
        /// The learner.
        id: u64,
    },
    /// Remove member `id`.
    RemoveMember {
        /// The member.
        id: u64,
    },
    /// Hand leadership to voter `to`, or to the most up-to-date voter.
    TransferLeader {
        /// The target, if named.
        to: Option<u64>,
    },
    /// Send a backup: a snapshot file of the store, taken after a read barrier.
    Snapshot,
}

/// Largest backup a client accepts in a `SNAPSHOT` reply (16 GiB, the bound on a snapshot file
/// a follower stages): far above any store raftfs means to hold, and it keeps a broken stream
/// from making the client reserve absurd amounts of memory.
pub const SNAPSHOT_REPLY_BYTES_MAX: u64 = 16 << 30;

/// One line of a `MEMBERS` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's id.
    pub id: u64,
    /// Voter (else learner).
    pub voter: bool,
    /// The member that answered leads (else follows); for `members local`, this member is the
    /// one the answering member believes leads.
    pub leader: bool,
    /// Its peer address.
    pub peer: String,
    /// Its client address.
    pub client: String,
    /// Its HTTP address, if any.
    pub http: Option<String>,
}

/// The verbs of administrative commands.
pub(crate) fn is_admin_verb(verb: &[u8]) -> bool {
    matches!(
        verb,
        b"members"
            | b"member-add"
            | b"member-promote"
            | b"member-remove"
            | b"transfer-leader"
            | b"snapshot"
    )
}

/// Parses an administrative command line already split into fields (the verb first).
pub(crate) fn parse(fields: &[&[u8]]) -> Result<Admin, ParseError> {
    let id = |f: &[u8]| {
        crate::codec::parse_u64(f)
            .filter(|&id| id > 0)
            .ok_or(ParseError::BadAdminField)
    };
    match fields {
        [b"members"] => Ok(Admin::Members),
        [b"members", b"local"] => Ok(Admin::MembersLocal),
        [b"member-add", i, peer, client, http] => Ok(Admin::AddMember {
            id: id(i)?,
            peer: address(peer)?,
            client: address(client)?,
            http: match *http {
                b"-" => None,
                http => Some(address(http)?),
            },
        }),
        [b"member-promote", i] => Ok(Admin::Promote { id: id(i)? }),
        [b"member-remove", i] => Ok(Admin::RemoveMember { id: id(i)? }),
        [b"transfer-leader"] => Ok(Admin::TransferLeader { to: None }),
        [b"transfer-leader", i] => Ok(Admin::TransferLeader { to: Some(id(i)?) }),
        [b"snapshot"] => Ok(Admin::Snapshot),
        _ => Err(ParseError::BadAdminField),
    }
}

/// An address field: printable ASCII, no spaces (`HOST:PORT`), at most 255 bytes.
fn address(field: &[u8]) -> Result<String, ParseError> {
    let ok = !field.is_empty() && field.len() <= 255 && field.iter().all(u8::is_ascii_graphic);
    if !ok {
        return Err(ParseError::BadAdminField);
    }
    String::from_utf8(field.to_vec()).map_err(|_| ParseError::BadAdminField)
}

impl Admin {
    /// The command's wire form, `\r\n` included.
    pub fn encode(&self) -> String {
        match self {
            Admin::Members => "members\r\n".into(),
            Admin::MembersLocal => "members local\r\n".into(),
            Admin::AddMember {
                id,
                peer,
                client,
                http,
            } => format!(
                "member-add {id} {peer} {client} {}\r\n",
                http.as_deref().unwrap_or("-")
            ),
            Admin::Promote { id } => format!("member-promote {id}\r\n"),
            Admin::RemoveMember { id } => format!("member-remove {id}\r\n"),
            Admin::TransferLeader { to: None } => "transfer-leader\r\n".into(),
            Admin::TransferLeader { to: Some(id) } => format!("transfer-leader {id}\r\n"),
            Admin::Snapshot => "snapshot\r\n".into(),
        }
    }
}

impl MemberInfo {
    /// The `MEMBER ...` line, without its terminator.
    pub(crate) fn line(&self) -> String {
        format!(
            "MEMBER {} {} {} {} {} {}",
            self.id,
            if self.voter { "voter" } else { "learner" },
            if self.leader { "leader" } else { "follower" },
            self.peer,
            self.client,
            self.http.as_deref().unwrap_or("-")
        )
    }

    /// Parses a `MEMBER ...` line (fields after splitting on single spaces).
    pub(crate) fn parse(fields: &[&[u8]]) -> Option<MemberInfo> {
        let [b"MEMBER", id, role, leads, peer, client, http] = fields else {
            return None;
        };
        let text = |f: &[u8]| address(f).ok();
        Some(MemberInfo {
            id: crate::codec::parse_u64(id)?,
            voter: match *role {
                b"voter" => true,
                b"learner" => false,
                _ => return None,
            },
            leader: match *leads {
                b"leader" => true,
                b"follower" => false,
                _ => return None,
            },
            peer: text(peer)?,
            client: text(client)?,
            http: match *http {
                b"-" => None,
                http => Some(text(http)?),
            },
        })
    }
}
