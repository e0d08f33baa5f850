/*  statsd - main: read the settings, then create, run and destroy the actor. */
#include "st_actor.h"

int
main(int argc, char **argv)
{
    st_config_t cfg = {0};
    int rc = st_config_load(&cfg, argc, argv);
    if (rc == 0) {
        st_actor_t *actor = st_actor_new(&cfg);
        rc = actor ? st_actor_run(actor) : 1;
        st_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    st_config_free(&cfg);
    return rc;
}
