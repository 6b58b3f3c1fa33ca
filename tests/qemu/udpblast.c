/* Guest-side load for end-to-end tests: sends COUNT numbered UDP datagrams of SIZE
 * bytes to ADDR:PORT as fast as the guest can, then prints how many went out. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        struct sockaddr_in sa = { .sin_family = AF_INET };
        char buf[1500] = { 0 };
        unsigned long count, size, sent = 0;
        int fd;

        if (argc != 5 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
                fprintf(stderr, "usage: udpblast ADDR PORT COUNT SIZE\n");
                return 2;
        }
        sa.sin_port = htons((uint16_t)atoi(argv[2]));
        count = strtoul(argv[3], NULL, 10);
        size = strtoul(argv[4], NULL, 10);
        if (size < 8 || size > sizeof(buf))
                size = 64;
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0) {
                perror("socket");
                return 1;
        }
        for (uint64_t seq = 0; seq < count; seq++) {
                memcpy(buf, &seq, sizeof(seq));
                /* a full socket queue is backpressure, not loss: retry */
                while (sendto(fd, buf, size, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        usleep(100);
                sent++;
        }
        printf("udpblast: sent %lu datagrams of %lu bytes\n", sent, size);
        return 0;
}
