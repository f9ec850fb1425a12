/*
 * Fake libnvpair.so.1: a small but real nvlist (see native/abi/nvpair.h and illumos-gate usr/src/uts/common/sys/nvpair.h, usr/src/common/nvpair/nvpair.c).
 *
 * Same public headers (nvlist_t 24 bytes with nvl_priv pointing at the private list; nvpair_t
 * 16 bytes followed by the NUL-terminated name, so NVP_NAME() works), same data_type_t values,
 * same prototypes (illumos spellings: char ** for string lookups), same error model: 0 or an
 * errno value (EINVAL, ENOENT, ENOMEM, ENOTSUP), errno untouched. Semantics reproduced:
 *   - NV_UNIQUE_NAME: adding a name replaces every pair of that name; NV_UNIQUE_NAME_TYPE
 *     replaces only the pair of that name and type; with neither, duplicates accumulate.
 *   - lookups need a unique-name list (else ENOTSUP) and match name and type (else ENOENT);
 *     returned strings and nvlists point into the list and live until it is freed/changed.
 *   - nvlist_add_nvlist copies the embedded list; nvlist_dup is a deep copy; nvlist_free is
 *     NULL-safe and frees embedded lists.
 *   - nvlist_next_nvpair walks in insertion order; NULL nvl gives NULL.
 * Supported value types: BOOLEAN, BOOLEAN_VALUE, BYTE, INT8..UINT64, HRTIME, STRING, NVLIST.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum { B_FALSE = 0, B_TRUE = 1 } boolean_t;
typedef unsigned int uint_t;
typedef unsigned char uchar_t;
typedef int64_t hrtime_t;

typedef enum {
  DATA_TYPE_DONTCARE = -1,
  DATA_TYPE_UNKNOWN = 0,
  DATA_TYPE_BOOLEAN,
  DATA_TYPE_BYTE,
  DATA_TYPE_INT16,
  DATA_TYPE_UINT16,
  DATA_TYPE_INT32,
  DATA_TYPE_UINT32,
  DATA_TYPE_INT64,
  DATA_TYPE_UINT64,
  DATA_TYPE_STRING,
  DATA_TYPE_BYTE_ARRAY,
  DATA_TYPE_INT16_ARRAY,
  DATA_TYPE_UINT16_ARRAY,
  DATA_TYPE_INT32_ARRAY,
  DATA_TYPE_UINT32_ARRAY,
  DATA_TYPE_INT64_ARRAY,
  DATA_TYPE_UINT64_ARRAY,
  DATA_TYPE_STRING_ARRAY,
  DATA_TYPE_HRTIME,
  DATA_TYPE_NVLIST,
  DATA_TYPE_NVLIST_ARRAY,
  DATA_TYPE_BOOLEAN_VALUE,
  DATA_TYPE_INT8,
  DATA_TYPE_UINT8,
  DATA_TYPE_BOOLEAN_ARRAY,
  DATA_TYPE_INT8_ARRAY,
  DATA_TYPE_UINT8_ARRAY,
  DATA_TYPE_DOUBLE
} data_type_t;

typedef struct nvpair {
  int32_t nvp_size;
  int16_t nvp_name_sz;
  int16_t nvp_reserve;
  int32_t nvp_value_elem;
  data_type_t nvp_type;
} nvpair_t;

typedef struct nvlist {
  int32_t nvl_version;
  uint32_t nvl_nvflag;
  uint64_t nvl_priv;
  uint32_t nvl_flag;
  int32_t nvl_pad;
} nvlist_t;

_Static_assert(sizeof(boolean_t) == 4, "boolean_t is int-sized");
_Static_assert(sizeof(data_type_t) == 4, "data_type_t is int-sized");
_Static_assert(sizeof(nvpair_t) == 16, "nvpair_t header");
_Static_assert(sizeof(nvlist_t) == 24, "nvlist_t header");

#define NV_UNIQUE_NAME 0x1
#define NV_UNIQUE_NAME_TYPE 0x2

/* One pair: links and value, then the public header, then the name (as NVP_NAME expects). */
typedef struct i_nvp {
  struct i_nvp *next;
  struct i_nvp *prev;
  union {
    int64_t i;
    uint64_t u;
    char *s;
    nvlist_t *nvl;
  } v;
  nvpair_t nvp;
  char name[];
} i_nvp_t;

typedef struct {
  i_nvp_t *first;
  i_nvp_t *last;
} nvpriv_t;

#define NVPRIV(nvl) ((nvpriv_t *)(uintptr_t)(nvl)->nvl_priv)
#define I_NVP(p) ((i_nvp_t *)(void *)((char *)(p) - offsetof(i_nvp_t, nvp)))

static void nvp_free(i_nvp_t *p);

static void list_unlink(nvpriv_t *priv, i_nvp_t *p) {
  if (p->prev != NULL) p->prev->next = p->next;
  else priv->first = p->next;
  if (p->next != NULL) p->next->prev = p->prev;
  else priv->last = p->prev;
  nvp_free(p);
}

void nvlist_free(nvlist_t *nvl);

static void nvp_free(i_nvp_t *p) {
  if (p->nvp.nvp_type == DATA_TYPE_STRING) free(p->v.s);
  if (p->nvp.nvp_type == DATA_TYPE_NVLIST) nvlist_free(p->v.nvl);
  free(p);
}

int nvlist_alloc(nvlist_t **nvlp, uint_t nvflag, int kmflag) {
  (void)kmflag;
  if (nvlp == NULL) return EINVAL;
  nvlist_t *nvl = calloc(1, sizeof(*nvl));
  nvpriv_t *priv = calloc(1, sizeof(*priv));
  if (nvl == NULL || priv == NULL) {
    free(nvl);
    free(priv);
    return ENOMEM;
  }
  nvl->nvl_version = 0;
  nvl->nvl_nvflag = nvflag & (NV_UNIQUE_NAME | NV_UNIQUE_NAME_TYPE);
  nvl->nvl_priv = (uint64_t)(uintptr_t)priv;
  *nvlp = nvl;
  return 0;
}

void nvlist_free(nvlist_t *nvl) {
  if (nvl == NULL || NVPRIV(nvl) == NULL) return;
  nvpriv_t *priv = NVPRIV(nvl);
  i_nvp_t *p = priv->first;
  while (p != NULL) {
    i_nvp_t *next = p->next;
    nvp_free(p);
    p = next;
  }
  free(priv);
  free(nvl);
}

int nvlist_dup(nvlist_t *nvl, nvlist_t **nvlp, int kmflag);

/* The common add: validates, applies the unique-name rule, appends a copy of the value. */
static int add_common(nvlist_t *nvl, const char *name, data_type_t type, int64_t ival, const char *sval,
                      nvlist_t *nval) {
  if (nvl == NULL || name == NULL || NVPRIV(nvl) == NULL) return EINVAL;
  if (type == DATA_TYPE_STRING && sval == NULL) return EINVAL;
  if (type == DATA_TYPE_NVLIST && (nval == NULL || nval == nvl)) return EINVAL;
  if (type == DATA_TYPE_BOOLEAN_VALUE && ival != B_FALSE && ival != B_TRUE) return EINVAL;
  size_t namelen = strlen(name);
  if (namelen + 1 > INT16_MAX) return EINVAL;
  nvpriv_t *priv = NVPRIV(nvl);

  i_nvp_t *p = calloc(1, sizeof(*p) + namelen + 1);
  if (p == NULL) return ENOMEM;
  memcpy(p->name, name, namelen + 1);
  p->nvp.nvp_name_sz = (int16_t)(namelen + 1);
  p->nvp.nvp_type = type;
  p->nvp.nvp_value_elem = type == DATA_TYPE_BOOLEAN ? 0 : 1;
  p->nvp.nvp_size = (int32_t)(sizeof(nvpair_t) + namelen + 1);
  if (type == DATA_TYPE_STRING) {
    p->v.s = strdup(sval);
    if (p->v.s == NULL) {
      free(p);
      return ENOMEM;
    }
  } else if (type == DATA_TYPE_NVLIST) {
    int err = nvlist_dup(nval, &p->v.nvl, 0);
    if (err != 0) {
      free(p);
      return err;
    }
  } else {
    p->v.i = ival;
  }

  /* Only once the new pair exists are the old ones removed, as the real one does. */
  if (nvl->nvl_nvflag & (NV_UNIQUE_NAME | NV_UNIQUE_NAME_TYPE)) {
    i_nvp_t *q = priv->first;
    while (q != NULL) {
      i_nvp_t *next = q->next;
      if (strcmp(q->name, name) == 0 &&
          ((nvl->nvl_nvflag & NV_UNIQUE_NAME) || q->nvp.nvp_type == type)) {
        list_unlink(priv, q);
      }
      q = next;
    }
  }
  p->prev = priv->last;
  if (priv->last != NULL) priv->last->next = p;
  else priv->first = p;
  priv->last = p;
  return 0;
}

int nvlist_add_boolean(nvlist_t *nvl, const char *name) { return add_common(nvl, name, DATA_TYPE_BOOLEAN, 0, NULL, NULL); }
int nvlist_add_boolean_value(nvlist_t *nvl, const char *name, boolean_t v) {
  return add_common(nvl, name, DATA_TYPE_BOOLEAN_VALUE, (int64_t)v, NULL, NULL);
}
int nvlist_add_byte(nvlist_t *nvl, const char *name, uchar_t v) { return add_common(nvl, name, DATA_TYPE_BYTE, v, NULL, NULL); }
int nvlist_add_int8(nvlist_t *nvl, const char *name, int8_t v) { return add_common(nvl, name, DATA_TYPE_INT8, v, NULL, NULL); }
int nvlist_add_uint8(nvlist_t *nvl, const char *name, uint8_t v) { return add_common(nvl, name, DATA_TYPE_UINT8, v, NULL, NULL); }
int nvlist_add_int16(nvlist_t *nvl, const char *name, int16_t v) { return add_common(nvl, name, DATA_TYPE_INT16, v, NULL, NULL); }
int nvlist_add_uint16(nvlist_t *nvl, const char *name, uint16_t v) { return add_common(nvl, name, DATA_TYPE_UINT16, v, NULL, NULL); }
int nvlist_add_int32(nvlist_t *nvl, const char *name, int32_t v) { return add_common(nvl, name, DATA_TYPE_INT32, v, NULL, NULL); }
int nvlist_add_uint32(nvlist_t *nvl, const char *name, uint32_t v) { return add_common(nvl, name, DATA_TYPE_UINT32, v, NULL, NULL); }
int nvlist_add_int64(nvlist_t *nvl, const char *name, int64_t v) { return add_common(nvl, name, DATA_TYPE_INT64, v, NULL, NULL); }
int nvlist_add_uint64(nvlist_t *nvl, const char *name, uint64_t v) {
  return add_common(nvl, name, DATA_TYPE_UINT64, (int64_t)v, NULL, NULL);
}
int nvlist_add_hrtime(nvlist_t *nvl, const char *name, hrtime_t v) { return add_common(nvl, name, DATA_TYPE_HRTIME, v, NULL, NULL); }
int nvlist_add_string(nvlist_t *nvl, const char *name, const char *v) {
  return add_common(nvl, name, DATA_TYPE_STRING, 0, v, NULL);
}
int nvlist_add_nvlist(nvlist_t *nvl, const char *name, nvlist_t *v) {
  return add_common(nvl, name, DATA_TYPE_NVLIST, 0, NULL, v);
}

int nvlist_dup(nvlist_t *nvl, nvlist_t **nvlp, int kmflag) {
  if (nvl == NULL || nvlp == NULL || NVPRIV(nvl) == NULL) return EINVAL;
  nvlist_t *copy = NULL;
  int err = nvlist_alloc(&copy, nvl->nvl_nvflag, kmflag);
  if (err != 0) return err;
  /* Copy without the unique-name pass, so a non-unique list keeps its duplicates. */
  uint32_t flags = copy->nvl_nvflag;
  copy->nvl_nvflag = 0;
  for (i_nvp_t *p = NVPRIV(nvl)->first; p != NULL; p = p->next) {
    data_type_t t = p->nvp.nvp_type;
    err = add_common(copy, p->name, t, t == DATA_TYPE_STRING || t == DATA_TYPE_NVLIST ? 0 : p->v.i,
                     t == DATA_TYPE_STRING ? p->v.s : NULL, t == DATA_TYPE_NVLIST ? p->v.nvl : NULL);
    if (err != 0) {
      nvlist_free(copy);
      return err;
    }
  }
  copy->nvl_nvflag = flags;
  *nvlp = copy;
  return 0;
}

int nvlist_remove_all(nvlist_t *nvl, const char *name) {
  if (nvl == NULL || name == NULL || NVPRIV(nvl) == NULL) return EINVAL;
  nvpriv_t *priv = NVPRIV(nvl);
  int found = 0;
  i_nvp_t *q = priv->first;
  while (q != NULL) {
    i_nvp_t *next = q->next;
    if (strcmp(q->name, name) == 0) {
      list_unlink(priv, q);
      found = 1;
    }
    q = next;
  }
  return found ? 0 : ENOENT;
}

int nvlist_remove(nvlist_t *nvl, const char *name, data_type_t type) {
  if (nvl == NULL || name == NULL || NVPRIV(nvl) == NULL) return EINVAL;
  nvpriv_t *priv = NVPRIV(nvl);
  for (i_nvp_t *q = priv->first; q != NULL; q = q->next) {
    if (strcmp(q->name, name) == 0 && q->nvp.nvp_type == type) {
      list_unlink(priv, q);
      return 0;
    }
  }
  return ENOENT;
}

static int lookup_common(nvlist_t *nvl, const char *name, data_type_t type, i_nvp_t **out) {
  if (nvl == NULL || name == NULL || NVPRIV(nvl) == NULL) return EINVAL;
  if (!(nvl->nvl_nvflag & (NV_UNIQUE_NAME | NV_UNIQUE_NAME_TYPE))) return ENOTSUP;
  for (i_nvp_t *p = NVPRIV(nvl)->first; p != NULL; p = p->next) {
    if (p->nvp.nvp_type == type && strcmp(p->name, name) == 0) {
      *out = p;
      return 0;
    }
  }
  return ENOENT;
}

#define LOOKUP(fn, T, TYPE, field)                                 \
  int fn(nvlist_t *nvl, const char *name, T *val) {                \
    i_nvp_t *p = NULL;                                             \
    if (val == NULL) return EINVAL;                                \
    int err = lookup_common(nvl, name, TYPE, &p);                  \
    if (err == 0) *val = (T)p->v.field;                            \
    return err;                                                    \
  }

LOOKUP(nvlist_lookup_boolean_value, boolean_t, DATA_TYPE_BOOLEAN_VALUE, i)
LOOKUP(nvlist_lookup_byte, uchar_t, DATA_TYPE_BYTE, i)
LOOKUP(nvlist_lookup_int8, int8_t, DATA_TYPE_INT8, i)
LOOKUP(nvlist_lookup_uint8, uint8_t, DATA_TYPE_UINT8, i)
LOOKUP(nvlist_lookup_int16, int16_t, DATA_TYPE_INT16, i)
LOOKUP(nvlist_lookup_uint16, uint16_t, DATA_TYPE_UINT16, i)
LOOKUP(nvlist_lookup_int32, int32_t, DATA_TYPE_INT32, i)
LOOKUP(nvlist_lookup_uint32, uint32_t, DATA_TYPE_UINT32, i)
LOOKUP(nvlist_lookup_int64, int64_t, DATA_TYPE_INT64, i)
LOOKUP(nvlist_lookup_uint64, uint64_t, DATA_TYPE_UINT64, u)
LOOKUP(nvlist_lookup_hrtime, hrtime_t, DATA_TYPE_HRTIME, i)
LOOKUP(nvlist_lookup_string, char *, DATA_TYPE_STRING, s)
LOOKUP(nvlist_lookup_nvlist, nvlist_t *, DATA_TYPE_NVLIST, nvl)

int nvlist_lookup_boolean(nvlist_t *nvl, const char *name) {
  i_nvp_t *p = NULL;
  return lookup_common(nvl, name, DATA_TYPE_BOOLEAN, &p);
}

int nvlist_lookup_nvpair(nvlist_t *nvl, const char *name, nvpair_t **nvp) {
  if (nvl == NULL || name == NULL || nvp == NULL || NVPRIV(nvl) == NULL) return EINVAL;
  if (!(nvl->nvl_nvflag & NV_UNIQUE_NAME)) return ENOTSUP;
  for (i_nvp_t *p = NVPRIV(nvl)->first; p != NULL; p = p->next) {
    if (strcmp(p->name, name) == 0) {
      *nvp = &p->nvp;
      return 0;
    }
  }
  return ENOENT;
}

boolean_t nvlist_exists(nvlist_t *nvl, const char *name) {
  if (nvl == NULL || name == NULL || NVPRIV(nvl) == NULL) return B_FALSE;
  for (i_nvp_t *p = NVPRIV(nvl)->first; p != NULL; p = p->next) {
    if (strcmp(p->name, name) == 0) return B_TRUE;
  }
  return B_FALSE;
}

boolean_t nvlist_empty(nvlist_t *nvl) {
  if (nvl == NULL || NVPRIV(nvl) == NULL) return B_TRUE;
  return NVPRIV(nvl)->first == NULL ? B_TRUE : B_FALSE;
}

nvpair_t *nvlist_next_nvpair(nvlist_t *nvl, nvpair_t *nvp) {
  if (nvl == NULL || NVPRIV(nvl) == NULL) return NULL;
  nvpriv_t *priv = NVPRIV(nvl);
  if (nvp == NULL) return priv->first != NULL ? &priv->first->nvp : NULL;
  /* Like the real one, refuse a pair that is not in this list (it checks its walker). */
  i_nvp_t *cur = I_NVP(nvp);
  for (i_nvp_t *p = priv->first; p != NULL; p = p->next) {
    if (p == cur) return p->next != NULL ? &p->next->nvp : NULL;
  }
  return NULL;
}

nvpair_t *nvlist_prev_nvpair(nvlist_t *nvl, nvpair_t *nvp) {
  if (nvl == NULL || NVPRIV(nvl) == NULL) return NULL;
  nvpriv_t *priv = NVPRIV(nvl);
  if (nvp == NULL) return priv->last != NULL ? &priv->last->nvp : NULL;
  i_nvp_t *cur = I_NVP(nvp);
  for (i_nvp_t *p = priv->first; p != NULL; p = p->next) {
    if (p == cur) return p->prev != NULL ? &p->prev->nvp : NULL;
  }
  return NULL;
}

char *nvpair_name(nvpair_t *nvp) { return nvp == NULL ? NULL : I_NVP(nvp)->name; }

data_type_t nvpair_type(nvpair_t *nvp) { return nvp == NULL ? DATA_TYPE_UNKNOWN : nvp->nvp_type; }

#define VALUE(fn, T, TYPE, field)                                  \
  int fn(nvpair_t *nvp, T *val) {                                  \
    if (nvp == NULL || val == NULL || nvp->nvp_type != TYPE) return EINVAL; \
    *val = (T)I_NVP(nvp)->v.field;                                 \
    return 0;                                                      \
  }

VALUE(nvpair_value_boolean_value, boolean_t, DATA_TYPE_BOOLEAN_VALUE, i)
VALUE(nvpair_value_byte, uchar_t, DATA_TYPE_BYTE, i)
VALUE(nvpair_value_int8, int8_t, DATA_TYPE_INT8, i)
VALUE(nvpair_value_uint8, uint8_t, DATA_TYPE_UINT8, i)
VALUE(nvpair_value_int16, int16_t, DATA_TYPE_INT16, i)
VALUE(nvpair_value_uint16, uint16_t, DATA_TYPE_UINT16, i)
VALUE(nvpair_value_int32, int32_t, DATA_TYPE_INT32, i)
VALUE(nvpair_value_uint32, uint32_t, DATA_TYPE_UINT32, i)
VALUE(nvpair_value_int64, int64_t, DATA_TYPE_INT64, i)
VALUE(nvpair_value_uint64, uint64_t, DATA_TYPE_UINT64, u)
VALUE(nvpair_value_hrtime, hrtime_t, DATA_TYPE_HRTIME, i)
VALUE(nvpair_value_string, char *, DATA_TYPE_STRING, s)
VALUE(nvpair_value_nvlist, nvlist_t *, DATA_TYPE_NVLIST, nvl)
