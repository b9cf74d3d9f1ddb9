"""xgov-digests: a DVC pipeline turning the UK public sector's repository feed into gitingest digests."""
