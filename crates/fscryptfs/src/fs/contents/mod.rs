//! The contents of regular files, in two layouts behind one trait: [`layout`] defines the
//! `Contents` trait, [`per_file`] and [`per_extent`] implement it (the latter with its write
//! buffer, the volume-wide [`budget`], the background [`writeout`] thread and log
//! [`compaction`]), and [`dispatch`] holds the operations the rest of `fs` calls, each choosing
//! the file's layout in one place.

mod budget;
mod compaction;
mod dispatch;
mod layout;
mod per_extent;
mod per_file;
pub(super) mod writeout;

pub(super) use budget::Budget;
pub(super) use per_extent::{secret_need, ExtState};
