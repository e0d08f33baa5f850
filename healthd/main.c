/*  healthd - main: read the settings, then create, run and destroy the actor. */
#include "hd_actor.h"

int
main(int argc, char **argv)
{
    hd_config_t cfg = {0};
    int rc = hd_config_load(&cfg, argc, argv);
    if (rc == 0) {
        hd_actor_t *actor = hd_actor_new(&cfg);
        rc = actor ? hd_actor_run(actor) : 1;
        hd_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    hd_config_free(&cfg);
    return rc;
}
