/*  gateway - main: read the settings, then create, run and destroy the actor. */
#include "gw_actor.h"

int
main(int argc, char **argv)
{
    gw_config_t cfg = {0};
    int rc = gw_config_load(&cfg, argc, argv);
    if (rc == 0) {
        gw_actor_t *actor = gw_actor_new(&cfg);
        rc = actor ? gw_actor_run(actor) : 1;
        gw_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    gw_config_free(&cfg);
    return rc;
}
