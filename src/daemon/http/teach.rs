//! The page's training, comparison and bundle-switch routes (`/api/teach…`, `/api/bundles…`).
