/* Tap devices: opening their queues, and checking a queue fd another process passed. */
#include "tap.h"

#include <elvis/model.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* /dev/net/tun is the misc device 10:200 (Documentation/admin-guide/devices.txt) */
#define TUN_MAJOR 10
#define TUN_MINOR 200

void elvis_tap_close(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

/* Attaching to someone else's tap, multiqueue or not, would hand their traffic to this
 * VM: the first queue creates the interface unless the device adopts it, and the others
 * attach to the interface just made. */
int elvis_tap_open(const char *name, unsigned nqp, bool adopt, int *fds)
{
        int r = 0;

        for (unsigned i = 0; i < nqp; i++)
                fds[i] = -1;
        if (!name || !elvis_ifname_valid(name) || nqp < 1 || nqp > ELVIS_MAX_QUEUES)
                return -EINVAL;
        for (unsigned i = 0; i < nqp && r == 0; i++) {
                struct ifreq ifr = { 0 };
                int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC), hdr = ELVIS_TAP_HDR_LEN;

                if (fd < 0) {
                        r = -errno;
                        break;
                }
                ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (nqp > 1 ? IFF_MULTI_QUEUE : 0);
                if (i == 0 && !adopt)
                        ifr.ifr_flags |= IFF_TUN_EXCL;
                memcpy(ifr.ifr_name, name, strlen(name) + 1);
                if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
                        r = errno == EBUSY && i == 0 && !adopt ? -EEXIST : -errno;
                        close(fd);
                        break;
                }
                /* TUNSETIFF may hand back another name if ours was a template */
                if (strcmp(ifr.ifr_name, name) != 0) {
                        close(fd);
                        r = -EINVAL;
                        break;
                }
                fds[i] = fd;
        }
        if (r < 0)
                elvis_tap_close(fds, nqp);
        return r;
}

int elvis_tap_check_fd(int fd, const char *name, unsigned nqp, const char **why)
{
        struct ifreq ifr = { 0 };
        struct stat st;
        short want = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;

        if (fstat(fd, &st) < 0) {
                *why = "cannot inspect the file descriptor";
                return -EBADF;
        }
        if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != TUN_MAJOR || minor(st.st_rdev) != TUN_MINOR) {
                *why = "not a tap: tap queues must be /dev/net/tun file descriptors";
                return -EINVAL;
        }
        /* the tun driver answers this from the fd alone, and only for an attached queue */
        if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
                *why = "a /dev/net/tun descriptor not attached to an interface";
                return -EINVAL;
        }
        if (strncmp(ifr.ifr_name, name, sizeof(ifr.ifr_name)) != 0) {
                *why = "a queue of another interface than the device's tap";
                return -EINVAL;
        }
        if ((ifr.ifr_flags & (want | IFF_TUN)) != want) {
                *why = "not a tap with a vnet header and without packet information";
                return -EINVAL;
        }
        if (!(ifr.ifr_flags & IFF_MULTI_QUEUE) != (nqp <= 1)) {
                *why = nqp > 1 ? "a single-queue tap for a multiqueue device" :
                                 "a multiqueue tap for a one-queue device";
                return -EINVAL;
        }
        return 0;
}
