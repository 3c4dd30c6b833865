#define _GNU_SOURCE
/*
 * machine_probe: what the machine charges for the two things an API cycle
 * is made of, so that figures from different machines can be compared.
 *
 *   machine_probe
 *
 * Prints the cost of an empty system call (getppid through syscall(2), so
 * libc cannot answer it from a cache) and the round trip of one byte over a
 * loopback TCP connection between two processes (each side a blocking read
 * and a write, TCP_NODELAY: two wake-ups per round trip). A checkout+return
 * cycle is two HTTP exchanges and two Redis scripts, ~20 system calls over
 * the client, the API and Redis together; on an x86 host an empty system
 * call usually costs well under 0.3 us. Measured, never asserted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double empty_syscall_ns(void)
{
    const int n = 1000000;
    double t0 = now();
    for (int i = 0; i < n; i++)
        syscall(SYS_getppid);
    return (now() - t0) / n * 1e9;
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Microseconds per one-byte round trip, or -1 when the sockets fail. */
static double loopback_round_trip_us(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 1) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    pid_t echo = fork();
    if (echo < 0)
        return -1;
    if (echo == 0) {
        int c = accept(ls, NULL, NULL);
        char b;
        nodelay(c);
        while (read(c, &b, 1) == 1 && write(c, &b, 1) == 1)
            ;
        _exit(0);
    }
    close(ls);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    double us = -1;
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
        nodelay(s);
        const int n = 20000;
        char b = 'x';
        int i = 0;
        double t0 = now();
        for (; i < n; i++)
            if (write(s, &b, 1) != 1 || read(s, &b, 1) != 1)
                break;
        if (i == n)
            us = (now() - t0) / n * 1e6;
    }
    if (s >= 0)
        close(s); /* the echo side reads end of file and exits */
    waitpid(echo, NULL, 0);
    return us;
}

int main(void)
{
    printf("empty system call: %.0f ns; loopback TCP round trip (1 byte, 2 processes): %.1f us\n",
           empty_syscall_ns(), loopback_round_trip_us());
    return 0;
}
