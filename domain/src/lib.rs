//! The pure domain of revledger (being written).
