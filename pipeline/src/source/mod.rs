//! Where events come from. Each source hands the engine raw records in batches; decoding
//! and normalizing happen downstream, the same for every source.

pub mod file;
