/* files: file transfer for authenticated clients (sockstack put/get/ls).
 *
 * Wire (after the mutual auth handshake; docs/protocols.md "files"):
 * be32-framed messages, first payload byte the type, integers big-endian.
 *
 *   client -> server
 *     0x20 PUT    flags u8 (bit 0 resume, bit 1 replace), size u64, mode u32, name
 *     0x21 GET    flags u8 (bit 0 resume), offset u64, name
 *     0x22 LIST   name of a directory ("" = the root)
 *     0x30 DATA   file bytes (PUT), at most SS_FILES_CHUNK
 *     0x31 END    SHA-256 of the whole file (32 bytes) (PUT)
 *   server -> client
 *     0x40 OK     u64: PUT accepted: send from this offset (resume);
 *                 after END: stored, size bytes
 *     0x41 ERROR  text (path refused, disk full, digest mismatch, ...)
 *     0x42 HEADER size u64, mode u32 (GET); DATA from the asked offset
 *                 and END (SHA-256 of the whole file) follow
 *     0x43 ENTRY  kind u8 ('f','d','l','o'), size u64, mode u32,
 *                 mtime u64 (s), name (LIST)
 *     0x44 LISTEND
 *     0x30 DATA, 0x31 END as above (GET)
 *
 * The digest travels after the data (not in the header) so that each side
 * reads the file once. Receivers write NAME's bytes to a temporary file in
 * the same directory (".NAME.sockstack-part"), check size and SHA-256, fsync,
 * and rename it into place; on a mismatch or a write error the temporary
 * file is removed, so no partial file is ever left under NAME. An
 * interrupted transfer keeps the temporary file for --resume, which sends
 * only the rest and still verifies the digest of the whole file. Runs of
 * zero bytes are not written (holes), so sparse files stay sparse.
 *
 * Paths are relative to --root; absolute paths, ".." and symlinks leading
 * outside are refused (openat2 RESOLVE_BENEATH).
 */
#ifndef SOCKSTACK_FILES_H
#define SOCKSTACK_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockstack/dial.h"
#include "sockstack/server.h"

#include "sockstack/api.h"
SS_API_BEGIN

enum ss_files_msg {
    SS_FILES_PUT = 0x20,
    SS_FILES_GET = 0x21,
    SS_FILES_LIST = 0x22,
    SS_FILES_DATA = 0x30,
    SS_FILES_END = 0x31,
    SS_FILES_OK = 0x40,
    SS_FILES_ERROR = 0x41,
    SS_FILES_HEADER = 0x42,
    SS_FILES_ENTRY = 0x43,
    SS_FILES_LISTEND = 0x44,
};

/* PUT and GET flags. Without REPLACE, a PUT to a name that exists is
 * refused (ERROR "NAME: exists (put --force replaces it): File exists");
 * for GET, REPLACE lets ss_files_get replace an existing local file. */
enum { SS_FILES_FLAG_RESUME = 1, SS_FILES_FLAG_REPLACE = 2 };

typedef struct ss_files_opts {
    const char *root;
    int root_fd;            /* opened by ss_files_opts_open */
    uint64_t max_size;      /* largest PUT; 0: SS_FILES_SIZE_MAX */
    uint64_t quota;         /* bytes of regular files under root; 0: none */
    unsigned part_expire_s; /* partial files unchanged longer are removed
                               by the server's timer (the service's
                               on_tick) and at a PUT to their directory;
                               0: SS_FILES_PART_EXPIRE_SECS, UINT_MAX: never */
} ss_files_opts;

/* Open opts->root (must be a directory). 0 or a negative errno. */
int ss_files_opts_open(ss_files_opts *o);
void ss_files_opts_close(ss_files_opts *o);

/* The service (event style; wrap with ss_authsvc, mutual). svc_ctx is a
 * ss_files_opts *. */
const ss_service *ss_files_service(void);

/* Open name (relative, under root_fd) with flags, refusing absolute paths,
 * ".." and symlinks that lead outside: SS_EPATH. */
int ss_files_open_beneath(int root_fd, const char *name, int flags, int mode);

/* ---- clients (on an authenticated stream; they wait only in its loop) ---- */

/* Progress: done of total bytes so far. Called once before any data with
 * done = where the transfer starts (the offset of a resume, else 0), then
 * per chunk. */
typedef void (*ss_files_progress_cb)(uint64_t done, uint64_t total, void *arg);

/* What went wrong, for the CLI: the server's ERROR text or a local one. */
typedef struct ss_files_err {
    char msg[512];
} ss_files_err;

/* Send local file `local` as `remote` (flags: SS_FILES_FLAG_*). Returns 0;
 * -EEXIST when remote exists and flags lack REPLACE; SS_EREMOTE with the
 * server's reason in err; SS_EDIGEST; or a negative errno. */
int ss_files_put(ss_stream *cs, const char *local, const char *remote, unsigned flags,
                 ss_files_progress_cb cb, void *arg, ss_files_err *err);
/* Fetch `remote` into `local` (temp file, verify, rename). Without
 * SS_FILES_FLAG_REPLACE an existing local is kept: -EEXIST, before any
 * request and again at the rename (RENAME_NOREPLACE). */
int ss_files_get(ss_stream *cs, const char *remote, const char *local, unsigned flags,
                 ss_files_progress_cb cb, void *arg, ss_files_err *err);

typedef struct ss_files_entry {
    char kind;      /* 'f' file, 'd' directory, 'l' symlink, 'o' other */
    uint64_t size;
    uint32_t mode;
    uint64_t mtime;
    char name[256];
} ss_files_entry;
typedef void (*ss_files_entry_cb)(const ss_files_entry *e, void *arg);
/* List directory `dir` ("" = root). */
int ss_files_ls(ss_stream *cs, const char *dir, ss_files_entry_cb cb, void *arg,
                ss_files_err *err);

/* Temporary name used for a transfer into `path`: "DIR/.BASE.sockstack-part". */
int ss_files_part_name(const char *path, char *out, size_t cap);

SS_API_END

#endif
