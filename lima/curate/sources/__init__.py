"""One module per source; each turns raw dumps into candidate frames of the
shared schema (:mod:`lima.schema`)."""
