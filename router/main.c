/*  router - main: read the settings, then create, run and destroy the actor. */
#include "rt_actor.h"

int
main(int argc, char **argv)
{
    rt_config_t cfg = {0};
    int rc = rt_config_load(&cfg, argc, argv);
    if (rc == 0) {
        rt_actor_t *actor = rt_actor_new(&cfg);
        rc = actor ? rt_actor_run(actor) : 1;
        rt_actor_destroy(&actor);
    } else if (rc == 1) {
        rc = 0; // --help
    }
    rt_config_free(&cfg);
    return rc;
}
