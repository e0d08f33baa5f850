# apid/ - the apid actor.
PROGRAMS += apid
apid_SRCS := apid/main.c apid/api_actor.c
apid_LIBS :=
