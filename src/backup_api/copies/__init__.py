"""A backup's copies, one per destination: which a new backup gets and which serves a
read (``rules``), and how each is reached wherever it is (``store``)."""
