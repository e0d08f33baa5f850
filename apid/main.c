/*  apid - main: read the settings, then create, run and destroy the actor. */
#include "api_actor.h"

int
main(int argc, char **argv)
{
    api_config_t cfg = {0};
    int rc = api_config_load(&cfg, argc, argv);
    if (rc == 0) {
        api_actor_t *actor = api_actor_new(&cfg);
        rc = actor ? api_actor_run(actor) : 1;
        api_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    api_config_free(&cfg);
    return rc;
}
