/* The guest's rdnssd: listens for router advertisements and writes /etc/resolv.conf from their
 * RDNSS (RFC 8106 type 25) and DNSSL (type 31) options. busybox has no such client; a real
 * distribution would use systemd-networkd or rdnssd. Exits after the first RA carrying RDNSS. */
#include <arpa/inet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *out = argc > 1 ? argv[1] : "/etc/resolv.conf";
  int s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
  if (s < 0) { perror("socket"); return 1; }
  struct icmp6_filter f;
  ICMP6_FILTER_SETBLOCKALL(&f);
  ICMP6_FILTER_SETPASS(ND_ROUTER_ADVERT, &f);
  setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
  unsigned char buf[2048];
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < (ssize_t)sizeof(struct nd_router_advert)) continue;
    char servers[512] = "", search[512] = "";
    size_t off = sizeof(struct nd_router_advert);
    while (off + 2 <= (size_t)n) {
      unsigned type = buf[off], len = buf[off + 1] * 8;
      if (len == 0 || off + len > (size_t)n) break;
      if (type == 25) {
        for (size_t a = off + 8; a + 16 <= off + len; a += 16) {
          char text[INET6_ADDRSTRLEN];
          inet_ntop(AF_INET6, buf + a, text, sizeof text);
          snprintf(servers + strlen(servers), sizeof servers - strlen(servers), "nameserver %s\n", text);
        }
      } else if (type == 31) {
        size_t p = off + 8;
        strcat(search, "search");
        while (p < off + len && buf[p]) {
          strcat(search, " ");
          while (p < off + len && buf[p]) {
            unsigned l = buf[p++];
            if (strlen(search) + l + 2 >= sizeof search) break;
            strncat(search, (char *)buf + p, l);
            p += l;
            if (buf[p]) strcat(search, ".");
          }
          p++;
        }
        strcat(search, "\n");
      }
      off += len;
    }
    if (!servers[0]) continue;
    FILE *fp = fopen(out, "w");
    if (!fp) { perror(out); return 1; }
    fputs(search, fp);
    fputs(servers, fp);
    fclose(fp);
    return 0;
  }
}
