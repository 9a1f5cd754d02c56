//! The form a mutating command takes in the Raft log. (Placeholder: being written.)
