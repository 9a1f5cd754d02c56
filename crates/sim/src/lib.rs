//! The raftfs cluster simulator and linearizability checker. (Being written.)
