/*
 * sha256_prefix FILE HEXPREFIX: rewrites the last 16 bytes of FILE (hex digits, a counter) until the file's
 * SHA-256 starts with HEXPREFIX (an even number of hex digits, at most 8), then writes the file back.
 *
 * Used by make_pth_fixtures.py to give a small zip-format .pth the hash prefix that torchvision's
 * `check_hash` expects of vgg16-397923af.pth (its file name carries the first 8 hex digits of the sha256):
 * the counter lives in the zip's end-of-central-directory comment, which readers ignore. Everything before
 * the last 64-byte block is hashed once (a saved SHA-256 state); each try hashes only the tail, which the
 * caller keeps under 56 bytes so a try costs one compression. The search is deterministic: it tries the
 * counters 0, 1, 2, ... in order and stops at the first match.
 *
 * Build: gcc -O2 -o sha256_prefix sha256_prefix.c -lcrypto
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FILE HEXPREFIX\n", argv[0]);
    return 2;
  }
  size_t plen = strlen(argv[2]) / 2;
  if (plen == 0 || plen > 4 || strlen(argv[2]) != plen * 2) {
    fprintf(stderr, "HEXPREFIX: 2 to 8 hex digits, an even number\n");
    return 2;
  }
  unsigned char want[4];
  for (size_t i = 0; i < plen; i++) sscanf(argv[2] + 2 * i, "%2hhx", &want[i]);

  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 1; }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc(n);
  if (!data || fread(data, 1, n, f) != (size_t)n) { perror("read"); return 1; }
  fclose(f);

  size_t counter_at = n - 16;
  size_t fixed = counter_at / 64 * 64; /* hashed once */
  size_t tail = n - fixed;
  if (tail > 55) {
    fprintf(stderr, "tail of %zu bytes needs two SHA-256 blocks per try: make the comment's text %zu bytes shorter\n", tail, tail - 55);
    return 2;
  }
  SHA256_CTX base;
  SHA256_Init(&base);
  SHA256_Update(&base, data, fixed);

  static const char hex[] = "0123456789abcdef";
  unsigned char *t = data + fixed;
  unsigned char digest[32];
  for (uint64_t c = 0;; c++) {
    for (int i = 0; i < 16; i++) data[counter_at + i] = hex[(c >> (60 - 4 * i)) & 15];
    SHA256_CTX ctx = base;
    SHA256_Update(&ctx, t, tail);
    SHA256_Final(digest, &ctx);
    if (memcmp(digest, want, plen) == 0) {
      fprintf(stderr, "found after %llu tries\n", (unsigned long long)c + 1);
      break;
    }
    if ((c & 0x3fffffff) == 0x3fffffff) fprintf(stderr, "%llu tries...\n", (unsigned long long)c + 1);
  }
  f = fopen(argv[1], "wb");
  if (!f || fwrite(data, 1, n, f) != (size_t)n || fclose(f) != 0) { perror("write"); return 1; }
  for (int i = 0; i < 32; i++) printf("%02x", digest[i]);
  printf("\n");
  return 0;
}
