/*  balancer - main: read the settings, then create, run and destroy the actor. */
#include "bal_actor.h"

int
main(int argc, char **argv)
{
    bal_config_t cfg = {0};
    int rc = bal_config_load(&cfg, argc, argv);
    if (rc == 0) {
        bal_actor_t *actor = bal_actor_new(&cfg);
        rc = actor ? bal_actor_run(actor) : 1;
        bal_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    bal_config_free(&cfg);
    return rc;
}
