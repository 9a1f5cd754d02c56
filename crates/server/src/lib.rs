//! The raftfs server. (Being written.)
