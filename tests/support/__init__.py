"""Support code shared by the tests (and the benchmark): servers, fixtures' helpers, fakes."""
