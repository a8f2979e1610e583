// The Labels view (issue 37).
