//! The headless planner.
