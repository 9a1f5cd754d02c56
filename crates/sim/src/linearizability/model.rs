//! The sequential specification of one file, as the search applies it.
//!
//! A file's state is whether it exists (and with which content) plus the version of the last
//! successful write or cas on it, since that version is the file's current one when it exists and
//! the bound every later version of the file must exceed when it does not. A version given by a
//! mutation whose outcome is unknown was never seen by a client, so it is kept as a lower bound
//! ([`VersionBound::AtLeast`]) until a read, a cas or an `ERR_VERSION` names it; it cannot be a
//! version some client was told of ([`Taken`]).

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
}

impl FileModel {
    /// A file never written.
    pub(crate) const INITIAL: FileModel = FileModel {
        content: None,
        last: VersionBound::Exact(0),
    };
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
    },
    /// `read` answered `ERR_FILE_NOT_FOUND`.
    ReadNotFound,
    /// `write` answered `OK version`, or (`version: None`) its outcome is unknown.
    Write {
        /// The version given, if the client learned it.
        version: Option<u64>,
        /// The content written.
        content: ContentId,
    },
    /// `cas` answered `OK version`, or (`version: None`) its outcome is unknown.
    Cas {
        /// The version the cas expected.
        expected: u64,
        /// The content written.
        content: ContentId,
        /// The version given, if the client learned it.
        version: Option<u64>,
    },
    /// `cas` answered `ERR_VERSION current`.
    CasMismatch {
        /// The version the cas expected.
        expected: u64,
        /// The version the reply named.
        current: u64,
        /// The content the cas carried (kept so the operation can be relaxed to unknown).
        content: ContentId,
    },
    /// `cas` answered `ERR_FILE_NOT_FOUND`.
    CasNotFound {
        /// The version the cas expected.
        expected: u64,
        /// The content the cas carried (kept so the operation can be relaxed to unknown).
        content: ContentId,
    },
    /// `delete` answered `OK`, or its outcome is unknown.
    Delete,
    /// `delete` answered `ERR_FILE_NOT_FOUND`.
    DeleteNotFound,
}

impl Effect {
    /// The state after this effect, or `None` if the effect is impossible in `state`.
    pub(crate) fn apply(&self, state: FileModel, taken: &Taken) -> Option<FileModel> {
        let exists = state.content.is_some();
        match *self {
            Effect::ReadFound { version, content } => {
                if state.content != Some(content) {
                    return None;
                }
                let last = state.last.pin(version, taken)?;
                Some(FileModel { last, ..state })
            }
            Effect::ReadNotFound | Effect::CasNotFound { .. } | Effect::DeleteNotFound => {
                (!exists).then_some(state)
            }
            Effect::Write { version, content } => {
                let last = match version {
                    Some(given) => state
                        .last
                        .admits_next(given)
                        .then_some(VersionBound::Exact(given))?,
                    None => state.last.next_unknown(taken)?,
                };
                Some(FileModel {
                    content: Some(content),
                    last,
                })
            }
            Effect::Cas {
                expected,
                content,
                version,
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
                Some(FileModel {
                    content: Some(content),
                    last,
                })
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
            Effect::Delete => exists.then_some(FileModel {
                content: None,
                ..state
            }),
        }
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
            Effect::ReadFound { .. } | Effect::ReadNotFound => None,
            Effect::Write { content, .. } => Some(Effect::Write {
                version: None,
                content,
            }),
            Effect::Cas {
                expected, content, ..
            }
            | Effect::CasMismatch {
                expected, content, ..
            }
            | Effect::CasNotFound { expected, content } => Some(Effect::Cas {
                expected,
                content,
                version: None,
            }),
            Effect::Delete | Effect::DeleteNotFound => Some(Effect::Delete),
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
///   a delete that must take effect can use that; a write or a delete next makes it pointless;
/// - after an uncertain delete, only an operation answering `ERR_FILE_NOT_FOUND` can use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Guard {
    /// The last operation linearized was definite (or none was): anything may follow.
    Free,
    /// An uncertain write or cas just made the file exist.
    ObserveExisting {
        /// Whether a delete may use the effect (the file was absent before the uncertain write).
        delete_allowed: bool,
    },
    /// An uncertain delete just removed the file.
    ObserveAbsent,
}

impl Guard {
    /// The guard after applying the uncertain `effect` to `before`.
    pub(crate) fn after_unknown(effect: &Effect, before: FileModel) -> Guard {
        match effect {
            Effect::Delete => Guard::ObserveAbsent,
            Effect::Write { .. } => Guard::ObserveExisting {
                delete_allowed: before.content.is_none(),
            },
            _ => Guard::ObserveExisting {
                delete_allowed: false,
            },
        }
    }

    /// Whether `effect` may come next; `certain` when the operation must take effect.
    pub(crate) fn allows(self, effect: &Effect, certain: bool) -> bool {
        match self {
            Guard::Free => true,
            Guard::ObserveExisting { delete_allowed } => match effect {
                Effect::ReadFound { .. } | Effect::Cas { .. } | Effect::CasMismatch { .. } => true,
                Effect::Delete => delete_allowed && certain,
                _ => false,
            },
            Guard::ObserveAbsent => matches!(
                effect,
                Effect::ReadNotFound | Effect::CasNotFound { .. } | Effect::DeleteNotFound
            ),
        }
    }
}
