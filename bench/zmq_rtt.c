/* zmq_rtt - the physical limit for propagation latency: a raw ZeroMQ round
 * trip over TCP loopback between two threads, with CurveZMQ on (as on the
 * mesh) and the same frame size as a one-sale push. Prints p50/p99 in µs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define FRAME 300

static char server_pub[41], server_sec[41];

static void *echo(void *ctx)
{
    void *s = zmq_socket(ctx, ZMQ_REP);
    int one = 1;
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server_sec, 40);
    zmq_bind(s, "tcp://127.0.0.1:47999");
    char buf[FRAME];
    for (;;) {
        int n = zmq_recv(s, buf, sizeof buf, 0);
        if (n < 0 || (n == 4 && memcmp(buf, "quit", 4) == 0)) {
            if (n >= 0)
                zmq_send(s, buf, (size_t)n, 0);
            break;
        }
        zmq_send(s, buf, (size_t)n, 0);
    }
    zmq_close(s);
    return NULL;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    void *ctx = zmq_ctx_new();
    char cpub[41], csec[41];
    zmq_curve_keypair(server_pub, server_sec);
    zmq_curve_keypair(cpub, csec);
    pthread_t th;
    pthread_create(&th, NULL, echo, ctx);
    void *c = zmq_socket(ctx, ZMQ_REQ);
    zmq_setsockopt(c, ZMQ_CURVE_SERVERKEY, server_pub, 40);
    zmq_setsockopt(c, ZMQ_CURVE_PUBLICKEY, cpub, 40);
    zmq_setsockopt(c, ZMQ_CURVE_SECRETKEY, csec, 40);
    zmq_connect(c, "tcp://127.0.0.1:47999");
    char buf[FRAME];
    memset(buf, 'x', sizeof buf);
    double *rtt = calloc((size_t)n, sizeof *rtt);
    for (int i = -100; i < n; i++) { /* 100 warm-up rounds */
        double t0 = now_us();
        zmq_send(c, buf, sizeof buf, 0);
        zmq_recv(c, buf, sizeof buf, 0);
        if (i >= 0)
            rtt[i] = now_us() - t0;
    }
    zmq_send(c, "quit", 4, 0);
    zmq_recv(c, buf, sizeof buf, 0);
    pthread_join(th, NULL);
    qsort(rtt, (size_t)n, sizeof *rtt, cmp);
    printf("zmq_rtt_us p50=%.1f p99=%.1f n=%d\n", rtt[n / 2], rtt[n * 99 / 100], n);
    free(rtt);
    zmq_close(c);
    zmq_ctx_term(ctx);
    return 0;
}
