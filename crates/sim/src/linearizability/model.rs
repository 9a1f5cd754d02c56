//! The sequential specification of one file, as the search applies it.
//!
//! A file's state is whether it exists (and with which content) plus the version of the last
//! successful write or cas on it, since that version is the file's current one when it exists and
//! the bound every later version of the file must exceed when it does not. A version given by a
//! mutation whose outcome is unknown was never seen by a client, so it is kept as a lower bound
//! ([`VersionBound::AtLeast`]) until a read, a cas or an `ERR_VERSION` names it; it cannot be a
//! version some client was told of ([`Taken`]).
//!
//! # Expiry
//! A version written with EXPTIME `e > 0` carries an [`Expiry`]: from when it may be found gone,
//! and the range of EXPTIME a read of it may report. The store expires it at `c + e` s, where `c`
//! is the replicated clock when the write applied: at least the write's invocation time minus how
//! far a member's clock may be behind (the stamp is the leader's clock on receipt, or higher).
//! The replicated clock at any later point is at most the observing operation's completion time
//! plus how far a member's clock may be ahead (it is the largest stamp so far). So an operation
//! may find the version gone (`ERR_FILE_NOT_FOUND` to a read, cas or delete) only if it completed
//! at or after `invoke + e - (ahead + behind)`, [`Expiry::gone_from`]. The first such operation
//! in the linearization makes the file absent, as a delete would; it stays absent until the next
//! successful write or cas, since the replicated clock never goes back. Any operation that finds
//! the file (a read of it, a cas that matches or names its version, a delete) may come before:
//! that expiry comes in time is not checked. A read of the version reports EXPTIME between 1 and
//! `e` (the clock at the read is at least the clock at the write and below the expiry instant),
//! and 0 for a version written without one.

use crate::history::ClockBound;
use fs::Name;
use std::collections::HashMap;
use std::fmt;

/// Index of a content in its partition's table of contents (equal bytes, equal index), so that
/// states are small and cheap to compare.
pub(crate) type ContentId = u32;

/// The content id of a read that returned bytes no write or cas on the file ever carried: it
/// matches no state, so such a read can never be linearized.
pub(crate) const CONTENT_NEVER_WRITTEN: ContentId = ContentId::MAX;

/// The versions successful writes and cas reported anywhere in the history, with the file each
/// was given to.
pub(crate) type Given = HashMap<u64, Name>;

/// The versions a mutation of unknown outcome cannot have got, because a client was told they
/// went to another mutation: each version is given once. Without this, a read of a version given
/// to a later write could be taken for a read of an unknown write's version, and the search
/// would wander down orders that cannot work.
#[derive(Clone, Debug, Default)]
pub(crate) struct Taken {
    /// The versions, sorted, without duplicates.
    versions: Vec<u64>,
    /// For each of `versions`, the first version above it that is not taken (`None` past
    /// `u64::MAX`), so that runs of consecutive versions are skipped in one step.
    free_after: Vec<Option<u64>>,
}

impl Taken {
    /// The set of `versions`.
    pub(crate) fn new(versions: impl IntoIterator<Item = u64>) -> Taken {
        let mut versions: Vec<u64> = versions.into_iter().collect();
        versions.sort_unstable();
        versions.dedup();
        let mut free_after = vec![None; versions.len()];
        for i in (0..versions.len()).rev() {
            let next = versions[i].checked_add(1);
            free_after[i] = match versions.get(i + 1) {
                Some(&following) if Some(following) == next => free_after[i + 1],
                _ => next,
            };
        }
        Taken {
            versions,
            free_after,
        }
    }

    fn contains(&self, version: u64) -> bool {
        self.versions.binary_search(&version).is_ok()
    }

    /// The smallest version at least `version` that is not taken.
    fn first_free(&self, version: u64) -> Option<u64> {
        match self.versions.binary_search(&version) {
            Ok(at) => self.free_after[at],
            Err(_) => Some(version),
        }
    }
}

/// When a version written with an EXPTIME may be found gone, and what a read of it may report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Expiry {
    /// The earliest completion time (history time) of an operation that may find the version
    /// expired: see the module documentation.
    pub(crate) gone_from: u64,
    /// The EXPTIME it was written with, seconds, at least 1: a read of it reports 1 to this.
    pub(crate) exptime_s: u64,
}

impl Expiry {
    /// The expiry of a version written with `exptime_s` (`None` for 0: never) by a mutation
    /// invoked at `invoke`, under `clock`; without a clock bound, it may be found gone at once.
    pub(crate) fn of(exptime_s: u64, invoke: u64, clock: Option<ClockBound>) -> Option<Expiry> {
        if exptime_s == 0 {
            return None;
        }
        let gone_from = clock.map_or(0, |clock| {
            let units = |ms: u64| ms.saturating_mul(clock.units_per_ms);
            let slack_ms = clock.ahead_ms.saturating_add(clock.behind_ms);
            // Saturating both ways errs early, which only admits more.
            invoke
                .saturating_add(units(exptime_s.saturating_mul(MS_PER_S)))
                .saturating_sub(units(slack_ms))
        });
        Some(Expiry {
            gone_from,
            exptime_s,
        })
    }

    /// Whether a read of the version may report `exptime_s` seconds left.
    fn admits_reported(expiry: Option<Expiry>, exptime_s: u64) -> bool {
        match expiry {
            None => exptime_s == 0,
            Some(expiry) => (1..=expiry.exptime_s).contains(&exptime_s),
        }
    }
}

/// Milliseconds in one second of EXPTIME.
const MS_PER_S: u64 = 1_000;

/// What is known of the version of a file's last successful write or cas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionBound {
    /// Exactly this version (0 before any write: the first version given is at least 1).
    Exact(u64),
    /// Some version no smaller than this, given by a mutation whose outcome the client never
    /// learned; a later read, cas or `ERR_VERSION` pins it down. The bound itself is a version
    /// no client was told of, so it is a possible value.
    AtLeast(u64),
}

impl VersionBound {
    /// The bound narrowed to exactly `version`, if the file's version can be `version`.
    fn pin(self, version: u64, taken: &Taken) -> Option<VersionBound> {
        let fits = match self {
            VersionBound::Exact(known) => known == version,
            VersionBound::AtLeast(least) => version >= least && !taken.contains(version),
        };
        fits.then_some(VersionBound::Exact(version))
    }

    /// Whether a new version `version` can follow this one: versions only grow.
    fn admits_next(self, version: u64) -> bool {
        match self {
            VersionBound::Exact(known) => version > known,
            // The unknown version is at least `least`, and may be exactly that.
            VersionBound::AtLeast(least) => version > least,
        }
    }

    /// The bound on a fresh version nobody saw, given after this one: above it and not taken.
    /// Taking the smallest such value for the earlier unknown version loses nothing, as every
    /// later version only has to exceed it. `None` once no larger `u64` is left.
    fn next_unknown(self, taken: &Taken) -> Option<VersionBound> {
        let (VersionBound::Exact(floor) | VersionBound::AtLeast(floor)) = self;
        taken
            .first_free(floor.checked_add(1)?)
            .map(VersionBound::AtLeast)
    }
}

impl fmt::Display for VersionBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionBound::Exact(version) => write!(f, "{version}"),
            VersionBound::AtLeast(least) => write!(f, ">={least}"),
        }
    }
}

/// The state of one file in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileModel {
    /// The file's content, or `None` when it does not exist.
    pub(crate) content: Option<ContentId>,
    /// The version of the last successful write or cas: the current version while the file
    /// exists, and the bound the next version must exceed after a delete.
    pub(crate) last: VersionBound,
    /// The current version's expiry; `None` when it never expires or the file does not exist.
    pub(crate) expiry: Option<Expiry>,
}

impl FileModel {
    /// A file never written.
    pub(crate) const INITIAL: FileModel = FileModel {
        content: None,
        last: VersionBound::Exact(0),
        expiry: None,
    };

    /// The file as written: `content` at version `last`, expiring as `expiry` says.
    fn written(content: ContentId, last: VersionBound, expiry: Option<Expiry>) -> FileModel {
        FileModel {
            content: Some(content),
            last,
            expiry,
        }
    }

    /// The file gone (deleted, or found expired); the version bound stays.
    fn gone(self) -> FileModel {
        FileModel {
            content: None,
            expiry: None,
            ..self
        }
    }

    /// The state as an operation completing at `complete` that finds no file sees it: absent
    /// already, or present at a version that may have expired by then, and is gone from now on.
    fn found_absent(self, complete: u64) -> Option<FileModel> {
        if self.content.is_none() {
            return Some(self);
        }
        let expired = self
            .expiry
            .is_some_and(|expiry| complete >= expiry.gone_from);
        expired.then(|| self.gone())
    }
}

/// One operation's effect on its file, derived from its command and what its client was told.
/// For an operation whose outcome is unknown, the effect is the one it has if it took effect;
/// not taking effect is modelled by never linearizing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// `read` answered `CONTENTS`.
    ReadFound {
        /// The version read.
        version: u64,
        /// The content read.
        content: ContentId,
        /// The EXPTIME the reply reported, seconds left.
        exptime_s: u64,
    },
    /// `read` answered `ERR_FILE_NOT_FOUND`.
    ReadNotFound {
        /// When the reply came: the file may have expired by then (see [`Expiry`]).
        complete: u64,
    },
    /// `write` answered `OK version`, or (`version: None`) its outcome is unknown.
    Write {
        /// The version given, if the client learned it.
        version: Option<u64>,
        /// The content written.
        content: ContentId,
        /// When the version written may expire, if it does.
        expiry: Option<Expiry>,
    },
    /// `cas` answered `OK version`, or (`version: None`) its outcome is unknown.
    Cas {
        /// The version the cas expected.
        expected: u64,
        /// The content written.
        content: ContentId,
        /// The version given, if the client learned it.
        version: Option<u64>,
        /// When the version written may expire, if it does.
        expiry: Option<Expiry>,
    },
    /// `cas` answered `ERR_VERSION current`.
    CasMismatch {
        /// The version the cas expected.
        expected: u64,
        /// The version the reply named.
        current: u64,
        /// The content the cas carried (kept so the operation can be relaxed to unknown).
        content: ContentId,
        /// The expiry the cas carried (likewise).
        expiry: Option<Expiry>,
    },
    /// `cas` answered `ERR_FILE_NOT_FOUND`.
    CasNotFound {
        /// The version the cas expected.
        expected: u64,
        /// The content the cas carried (kept so the operation can be relaxed to unknown).
        content: ContentId,
        /// The expiry the cas carried (likewise).
        expiry: Option<Expiry>,
        /// When the reply came: the file may have expired by then.
        complete: u64,
    },
    /// `delete` answered `OK`, or its outcome is unknown.
    Delete,
    /// `delete` answered `ERR_FILE_NOT_FOUND`.
    DeleteNotFound {
        /// When the reply came: the file may have expired by then.
        complete: u64,
    },
}

impl Effect {
    /// The state after this effect, or `None` if the effect is impossible in `state`.
    pub(crate) fn apply(&self, state: FileModel, taken: &Taken) -> Option<FileModel> {
        let exists = state.content.is_some();
        match *self {
            Effect::ReadFound {
                version,
                content,
                exptime_s,
            } => {
                if state.content != Some(content)
                    || !Expiry::admits_reported(state.expiry, exptime_s)
                {
                    return None;
                }
                let last = state.last.pin(version, taken)?;
                Some(FileModel { last, ..state })
            }
            Effect::ReadNotFound { complete }
            | Effect::CasNotFound { complete, .. }
            | Effect::DeleteNotFound { complete } => state.found_absent(complete),
            Effect::Write {
                version,
                content,
                expiry,
            } => {
                let last = match version {
                    Some(given) => state
                        .last
                        .admits_next(given)
                        .then_some(VersionBound::Exact(given))?,
                    None => state.last.next_unknown(taken)?,
                };
                Some(FileModel::written(content, last, expiry))
            }
            Effect::Cas {
                expected,
                content,
                version,
                expiry,
            } => {
                if !exists {
                    return None;
                }
                let matched = state.last.pin(expected, taken)?;
                let last = match version {
                    Some(given) => matched
                        .admits_next(given)
                        .then_some(VersionBound::Exact(given))?,
                    None => matched.next_unknown(taken)?,
                };
                Some(FileModel::written(content, last, expiry))
            }
            Effect::CasMismatch {
                expected, current, ..
            } => {
                if !exists || current == expected {
                    return None;
                }
                let last = state.last.pin(current, taken)?;
                Some(FileModel { last, ..state })
            }
            Effect::Delete => exists.then(|| state.gone()),
        }
    }

    /// Whether the operation writes a version that expires.
    pub(crate) fn expires(&self) -> bool {
        matches!(
            self,
            Effect::Write {
                expiry: Some(_),
                ..
            } | Effect::Cas {
                expiry: Some(_),
                ..
            } | Effect::CasMismatch {
                expiry: Some(_),
                ..
            } | Effect::CasNotFound {
                expiry: Some(_),
                ..
            }
        )
    }

    /// Whether the operation answered `ERR_FILE_NOT_FOUND`.
    pub(crate) fn finds_absent(&self) -> bool {
        matches!(
            self,
            Effect::ReadNotFound { .. }
                | Effect::CasNotFound { .. }
                | Effect::DeleteNotFound { .. }
        )
    }

    /// The version the operation reported, if it is a definite successful write or cas.
    pub(crate) fn version_given(&self) -> Option<u64> {
        match *self {
            Effect::Write { version, .. } | Effect::Cas { version, .. } => version,
            _ => None,
        }
    }

    /// The effect of the same command if the client had not learned its outcome, or `None` for a
    /// read (a read of unknown outcome says nothing). Relaxing keeps every linearizable history
    /// linearizable: the relaxed operation may still take effect as before, or not at all.
    pub(crate) fn relaxed(&self) -> Option<Effect> {
        match *self {
            Effect::ReadFound { .. } | Effect::ReadNotFound { .. } => None,
            Effect::Write {
                content, expiry, ..
            } => Some(Effect::Write {
                version: None,
                content,
                expiry,
            }),
            Effect::Cas {
                expected,
                content,
                expiry,
                ..
            }
            | Effect::CasMismatch {
                expected,
                content,
                expiry,
                ..
            }
            | Effect::CasNotFound {
                expected,
                content,
                expiry,
                ..
            } => Some(Effect::Cas {
                expected,
                content,
                version: None,
                expiry,
            }),
            Effect::Delete | Effect::DeleteNotFound { .. } => Some(Effect::Delete),
        }
    }
}

/// What may take effect right after an operation whose effect was uncertain (its outcome is
/// unknown, or it is optional in an explanation).
///
/// Such an effect is only worth having just before an operation that observes it. Anywhere
/// else, the same order without it (the operation never taking effect, or skipped) does at least
/// as well: the file ends with the same content and a version bound no higher, a lower bound
/// admits every continuation a higher one does, and the unused operation stays available. The
/// search prunes those dominated orders, which keeps many unknown outcomes from multiplying
/// configurations, and never loses a linearization:
/// - after an uncertain write or cas the file exists: only a read that found it, a cas (which
///   matches or names its version), or, when the file did not exist before an uncertain write,
///   a delete that must take effect can use that; when the version written expires and the file
///   existed before, so can an operation that finds the file gone (it may have expired; the
///   version before it perhaps could not have); a write or a delete next makes it pointless;
/// - after an uncertain delete, only an operation answering `ERR_FILE_NOT_FOUND` can use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Guard {
    /// The last operation linearized was definite (or none was): anything may follow.
    Free,
    /// An uncertain write or cas just made the file exist.
    ObserveExisting {
        /// Whether a delete may use the effect (the file was absent before the uncertain write).
        delete_allowed: bool,
        /// Whether an operation finding the file gone may use the effect (the version written
        /// expires, and the file existed before).
        absence_allowed: bool,
    },
    /// An uncertain delete just removed the file.
    ObserveAbsent,
}

impl Guard {
    /// The guard after applying the uncertain `effect` to `before`.
    pub(crate) fn after_unknown(effect: &Effect, before: FileModel) -> Guard {
        let existed = before.content.is_some();
        match *effect {
            Effect::Delete => Guard::ObserveAbsent,
            Effect::Write { expiry, .. } => Guard::ObserveExisting {
                delete_allowed: !existed,
                absence_allowed: existed && expiry.is_some(),
            },
            Effect::Cas { expiry, .. } => Guard::ObserveExisting {
                delete_allowed: false,
                absence_allowed: existed && expiry.is_some(),
            },
            _ => Guard::ObserveExisting {
                delete_allowed: false,
                absence_allowed: false,
            },
        }
    }

    /// Whether `effect` may come next; `certain` when the operation must take effect.
    pub(crate) fn allows(self, effect: &Effect, certain: bool) -> bool {
        match self {
            Guard::Free => true,
            Guard::ObserveExisting {
                delete_allowed,
                absence_allowed,
            } => match effect {
                Effect::ReadFound { .. } | Effect::Cas { .. } | Effect::CasMismatch { .. } => true,
                Effect::Delete => delete_allowed && certain,
                _ if effect.finds_absent() => absence_allowed,
                _ => false,
            },
            Guard::ObserveAbsent => effect.finds_absent(),
        }
    }
}
