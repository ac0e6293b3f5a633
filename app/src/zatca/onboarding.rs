//! Onboarding an EGS unit with ZATCA (being written).
