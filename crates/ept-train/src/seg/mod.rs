//! Segmentation: losses ([`loss`]), per-volume Dice ([`dice`]) and sliding-window
//! inference over whole volumes ([`sliding`]).

pub mod dice;
pub mod loss;
pub mod sliding;
