/*  t_redis - a real redis-server for tests, started and stopped by PID.

    `redis-server --port P --save "" --appendonly no --bind 127.0.0.1` (and
    `--requirepass` when asked), killed with the test (PR_SET_PDEATHSIG);
    started only once it answers a PING (bounded wait). A test helper: it
    aborts the test (cmocka) when the server cannot start.
*/
#ifndef T_REDIS_H
#define T_REDIS_H

#include <stdbool.h>
#include <sys/types.h>

//  A TCP port free on 127.0.0.1 now.
int t_redis_free_port(void);

//  True once the server at port answers PING (any answer, NOAUTH included).
bool t_redis_answers(int port);

//  Start a server on port (password NULL: none). Returns its pid.
pid_t t_redis_start(int port, const char *password);

//  Send sig (SIGTERM, SIGKILL) and reap it; *pid_p becomes 0.
void t_redis_stop(pid_t *pid_p, int sig);

#endif
