//! The page's label routes (`/api/labels…`).
