//! Cutting a bundle's graph at its pooled features and fusing a new head onto it.
