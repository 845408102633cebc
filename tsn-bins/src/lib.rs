//! bins
