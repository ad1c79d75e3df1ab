/* floor: the least a TCP echo server can do, as a yardstick for
 * bench/echo/run.
 *
 *   floor PORT
 *
 * Listens on 127.0.0.1:PORT; one thread, epoll, level-triggered; each
 * readable connection gets one recv() and its bytes go straight back with
 * one send() (a short send drops the rest). Nothing else: no output queue,
 * no limits, no timers, no error handling beyond closing. What it costs per
 * message is what the kernel's TCP path costs on this machine, so serve
 * echo's distance from it is our own overhead, and socat's or ncat's
 * distance from it says how far any server could get ahead of them.
 * Benchmark tool: prints and exits itself (not library code); runs until
 * killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_net.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: floor PORT\n");
        return 2;
    }
    bench_raise_nofile();
    int l = bench_listen_lo(atoi(argv[1])), ep = l < 0 ? -1 : bench_epoll_with(l);
    if (ep < 0) {
        perror("floor");
        return 1;
    }
    static struct epoll_event evs[256];
    static char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                while (bench_accept_one(ep, l) >= 0)
                    ;
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0) {
                close(fd);
                continue;
            }
            send(fd, buf, (size_t)r, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
}
