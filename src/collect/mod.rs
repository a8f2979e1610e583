//! Collecting person crops on the box for labelling (off by default):
//! the pixels the classifier saw, masks painted, bounded and expiring.
