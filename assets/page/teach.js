// The Teach view: train, compare, switch, roll back (issue 37).
