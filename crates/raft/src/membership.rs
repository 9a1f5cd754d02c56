//! Cluster membership: who votes, who only learns, and how each member is reached.
//!
//! # Rules (single-server changes, thesis 4.2, as etcd applies them)
//! - A [`Membership`] lives in the log as a [`Payload::Membership`](crate::Payload) entry that
//!   holds the *whole* new configuration (addresses included), and in every snapshot. The
//!   configuration in force at an index is the latest such entry at or below it, else the
//!   snapshot's, else the bootstrap one the node was built with.
//! - A configuration takes effect on a node when its entry **commits** there, never on append,
//!   so no truncation ever rolls one back. The entry itself commits under the configuration
//!   before it; a single-server change keeps every majority of the old configuration
//!   intersecting every majority of the new one, which is what makes that safe.
//! - A leader proposes a change only after it has committed an entry of its own term (the fix
//!   to the single-server bug found after the thesis) and only while no other change is
//!   uncommitted in its log: one change in flight.
//! - Each change moves one member: add a learner (a non-voter that receives the log), promote a
//!   learner that has caught up, or remove a member. A leader whose removal commits hands
//!   leadership to the most up-to-date voter (`TimeoutNow`) and steps down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{LogIndex, NodeId};
use crate::message::WireError;

/// The most members (voters and learners) a configuration holds: replication and quorum work
/// grows with it, and no sensible cluster of this kind comes near it.
pub const MEMBERS_MAX: usize = 64;

/// The longest address accepted, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 255;

/// How a member is reached: its peer, client and (optional) HTTP addresses, as `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// Where the other members reach it (Raft traffic).
    pub peer: String,
    /// Where clients reach it (named in `ERR_REDIRECT`).
    pub client: String,
    /// Where it serves status and metrics, if anywhere.
    pub http: Option<String>,
}

/// One member of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// True for a voter; false for a learner, which receives the log but neither votes nor
    /// counts towards any majority.
    pub voter: bool,
    /// How it is reached.
    pub addresses: Addresses,
}

/// A configuration: every member with its role and addresses. Always valid (see
/// [`Membership::new`]); the empty configuration is that of a node waiting to join.
///
/// Deserialising checks the rules too, so a configuration inside a peer message is as valid as
/// one from [`Membership::decode`]: a follower stores what a leader sends, and an invalid one in
/// its log or snapshot would refuse to decode when it restarts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "UncheckedMembership")]
pub struct Membership {
    members: BTreeMap<NodeId, Member>,
}

/// The serialised form of a [`Membership`] (the same fields), before its rules are checked.
#[derive(Deserialize)]
struct UncheckedMembership {
    members: BTreeMap<NodeId, Member>,
}

impl TryFrom<UncheckedMembership> for Membership {
    type Error = MembershipError;

    fn try_from(unchecked: UncheckedMembership) -> Result<Membership, MembershipError> {
        Membership::new(unchecked.members)
    }
}

/// One single-server change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds `id` as a learner reached at `addresses`.
    AddLearner {
        /// The new member.
        id: NodeId,
        /// How it is reached.
        addresses: Addresses,
    },
    /// Makes learner `id` a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Removes member `id`, voter or learner.
    Remove {
        /// The member.
        id: NodeId,
    },
}

/// Why a configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MembershipError {
    /// More than [`MEMBERS_MAX`] members.
    #[error("a configuration holds at most {MEMBERS_MAX} members")]
    TooManyMembers,
    /// Members but no voter: nobody could ever commit.
    #[error("a configuration needs at least one voter")]
    NoVoter,
    /// Id 0 is not a member id.
    #[error("member id 0 is reserved")]
    ZeroId,
    /// An address is empty, too long or holds whitespace or control characters.
    #[error("member {} has an invalid address {address:?}", id.0)]
    BadAddress {
        /// The member.
        id: NodeId,
        /// The address.
        address: String,
    },
}

/// Why a leader refused a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChangeError {
    /// This node does not lead; `leader` is the leader it knows.
    #[error("not the leader")]
    NotLeader {
        /// The known leader, if any.
        leader: Option<NodeId>,
    },
    /// The leader has not yet committed an entry of its term; retry shortly.
    #[error("the leader has not yet committed an entry of its term; retry")]
    NotReady,
    /// Another change is uncommitted.
    #[error("another membership change (log index {}) is still pending", index.0)]
    Pending {
        /// The index of the pending change.
        index: LogIndex,
    },
    /// The id is already a member.
    #[error("member {} already exists", .0.0)]
    AlreadyMember(NodeId),
    /// The id is not a member.
    #[error("no member {}", .0.0)]
    UnknownMember(NodeId),
    /// Only a learner can be promoted.
    #[error("member {} is already a voter", .0.0)]
    AlreadyVoter(NodeId),
    /// A learner is promoted only once it holds the log up to the commit index.
    #[error(
        "learner {} has not caught up (holds up to index {}, commit is {}); retry",
        id.0, matched.0, commit.0
    )]
    LearnerBehind {
        /// The learner.
        id: NodeId,
        /// How far its log matches the leader's.
        matched: LogIndex,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// The change would leave no voter.
    #[error("cannot remove the last voter")]
    LastVoter,
    /// Another address collides with an existing member's.
    #[error("address {0} is already used by another member")]
    AddressInUse(String),
    /// The resulting configuration would be invalid.
    #[error("{0}")]
    Invalid(#[from] MembershipError),
}

impl Membership {
    /// A configuration of `members`, checked.
    pub fn new(members: BTreeMap<NodeId, Member>) -> Result<Membership, MembershipError> {
        let membership = Membership { members };
        membership.validate()?;
        Ok(membership)
    }

    /// Voters `ids` with placeholder addresses (for tests and simulations that route by id).
    pub fn voters_only(ids: impl IntoIterator<Item = NodeId>) -> Membership {
        let members = ids
            .into_iter()
            .map(|id| {
                let address = format!("node-{}", id.0);
                let member = Member {
                    voter: true,
                    addresses: Addresses {
                        peer: address.clone(),
                        client: address,
                        http: None,
                    },
                };
                (id, member)
            })
            .collect();
        Membership { members }
    }

    /// Checks every rule of a configuration.
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.members.len() > MEMBERS_MAX {
            return Err(MembershipError::TooManyMembers);
        }
        if !self.members.is_empty() && !self.members.values().any(|m| m.voter) {
            return Err(MembershipError::NoVoter);
        }
        for (&id, member) in &self.members {
            if id.0 == 0 {
                return Err(MembershipError::ZeroId);
            }
            let a = &member.addresses;
            for address in [Some(&a.peer), Some(&a.client), a.http.as_ref()]
                .into_iter()
                .flatten()
            {
                if !is_valid_address(address) {
                    return Err(MembershipError::BadAddress {
                        id,
                        address: address.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every member, by id.
    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        &self.members
    }

    /// Member `id`, if it is one.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// True if `id` is a member (voter or learner).
    pub fn contains(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    /// True if `id` is a voter.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(|m| m.voter)
    }

    /// The voters, in id order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.voter)
            .map(|(&id, _)| id)
    }

    /// True for the configuration of a node that waits to join (no member at all).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The configuration after `change`, or why it cannot be made.
    pub fn apply(&self, change: &MembershipChange) -> Result<Membership, ChangeError> {
        let mut members = self.members.clone();
        match change {
            MembershipChange::AddLearner { id, addresses } => {
                if members.contains_key(id) {
                    return Err(ChangeError::AlreadyMember(*id));
                }
                let taken = members.values().any(|m| {
                    m.addresses.peer == addresses.peer || m.addresses.client == addresses.client
                });
                if taken {
                    return Err(ChangeError::AddressInUse(addresses.peer.clone()));
                }
                let member = Member {
                    voter: false,
                    addresses: addresses.clone(),
                };
                members.insert(*id, member);
            }
            MembershipChange::Promote { id } => match members.get_mut(id) {
                None => return Err(ChangeError::UnknownMember(*id)),
                Some(member) if member.voter => return Err(ChangeError::AlreadyVoter(*id)),
                Some(member) => member.voter = true,
            },
            MembershipChange::Remove { id } => match members.remove(id) {
                None => return Err(ChangeError::UnknownMember(*id)),
                Some(_) if !members.values().any(|m| m.voter) => {
                    return Err(ChangeError::LastVoter);
                }
                Some(_) => {}
            },
        }
        Ok(Membership::new(members)?)
    }

    /// The stored form (postcard).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a map of plain structs into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Parses and checks the stored form; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Membership, WireError> {
        let (membership, rest): (Membership, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes { count: rest.len() });
        }
        membership
            .validate()
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        Ok(membership)
    }
}

/// A `HOST:PORT`-like address: non-empty, bounded, printable, no whitespace.
fn is_valid_address(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= ADDRESS_BYTES_MAX
        && address.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(n: u64) -> Addresses {
        Addresses {
            peer: format!("127.0.0.1:{}", 9000 + n),
            client: format!("127.0.0.1:{}", 8000 + n),
            http: None,
        }
    }

    fn three() -> Membership {
        Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)])
    }

    #[test]
    fn a_learner_is_added_promoted_and_removed() {
        let add = MembershipChange::AddLearner {
            id: NodeId(4),
            addresses: addresses(4),
        };
        let with = three().apply(&add).unwrap_or_else(|e| panic!("{e}"));
        assert!(with.contains(NodeId(4)) && !with.is_voter(NodeId(4)));
        assert_eq!(with.voters().count(), 3);
        let promoted = with
            .apply(&MembershipChange::Promote { id: NodeId(4) })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(promoted.is_voter(NodeId(4)));
        let removed = promoted
            .apply(&MembershipChange::Remove { id: NodeId(1) })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            removed.voters().collect::<Vec<_>>(),
            [NodeId(2), NodeId(3), NodeId(4)]
        );
        assert_eq!(Membership::decode(&removed.encode()), Ok(removed));
    }

    #[test]
    fn bad_changes_are_refused_with_their_reason() {
        let m = three();
        let add = |id| MembershipChange::AddLearner {
            id: NodeId(id),
            addresses: addresses(id),
        };
        assert_eq!(m.apply(&add(2)), Err(ChangeError::AlreadyMember(NodeId(2))));
        assert_eq!(
            m.apply(&MembershipChange::Promote { id: NodeId(2) }),
            Err(ChangeError::AlreadyVoter(NodeId(2)))
        );
        assert_eq!(
            m.apply(&MembershipChange::Remove { id: NodeId(9) }),
            Err(ChangeError::UnknownMember(NodeId(9)))
        );
        let one = Membership::voters_only([NodeId(1)]);
        assert_eq!(
            one.apply(&MembershipChange::Remove { id: NodeId(1) }),
            Err(ChangeError::LastVoter)
        );
        let bad = MembershipChange::AddLearner {
            id: NodeId(5),
            addresses: Addresses {
                peer: "a b".into(),
                client: "c".into(),
                http: None,
            },
        };
        assert!(matches!(
            m.apply(&bad),
            Err(ChangeError::Invalid(MembershipError::BadAddress { .. }))
        ));
    }

    #[test]
    fn decode_refuses_garbage_and_invalid_configurations() {
        assert!(Membership::decode(&[0xff, 0xff, 0xff]).is_err());
        let mut bytes = three().encode();
        bytes.push(0);
        assert!(Membership::decode(&bytes).is_err());
        let learners_only = Membership {
            members: [(
                NodeId(1),
                Member {
                    voter: false,
                    addresses: addresses(1),
                },
            )]
            .into(),
        };
        assert!(Membership::decode(&learners_only.encode()).is_err());
    }

    #[test]
    fn messages_refuse_invalid_configurations() {
        // Found by fuzzing (fuzz/regressions/peer_message): a configuration inside a message
        // used to decode unchecked, so a follower could store one it cannot read back.
        let mut bad_address = three();
        if let Some(member) = bad_address.members.get_mut(&NodeId(3)) {
            member.addresses.client = "127.0.0.1\0:3".into();
        }
        let msg = crate::Message::InstallSnapshot(crate::InstallSnapshotRequest {
            term: crate::Term(1),
            leader: NodeId(1),
            index: LogIndex(1),
            snapshot_term: crate::Term(1),
            membership: bad_address,
        });
        assert!(matches!(
            crate::Message::decode(&msg.encode()),
            Err(WireError::Malformed(_))
        ));
    }
}
