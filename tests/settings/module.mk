# tests/settings/ - every setting of SPEC §2 against the actors that own it
# (--help, exit 2 on a bad value); reads ../shared/SPEC.md when it is there.
IT_TESTS += tests/settings/it_settings
