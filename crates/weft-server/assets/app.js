// The dashboard (work in progress).
