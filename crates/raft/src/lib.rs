//! The raftfs consensus core. (Being written.)
