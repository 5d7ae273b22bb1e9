// spm.cc - SentencePiece behind the C interface of spm.h. Every entry point catches what the
// library may throw (allocation failures above all) and turns it into a status; nothing of C++
// crosses the boundary.
#include "spm.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

extern "C" {
#include "../src/hg.h"
}

struct hg_spm {
    sentencepiece::SentencePieceProcessor sp;
    std::string bytes; // the serialized model the processor was built from
};

namespace {

// SentencePiece's message as one line of printable ASCII (other bytes become '?').
std::string one_line(const sentencepiece::util::Status &st)
{
    std::string m = st.ToString();
    for (char &c : m)
        if ((unsigned char)c < 0x20)
            c = ' ';
        else if ((unsigned char)c >= 0x7f)
            c = '?';
    while (!m.empty() && m.back() == ' ')
        m.pop_back();
    return m;
}

// The lines of the corpora, one after the other, as the trainer reads them.
class LinesIterator : public sentencepiece::SentenceIterator {
  public:
    LinesIterator(const hg_text_lines *const *corp, int ncorp) : corp_(corp), ncorp_(ncorp)
    {
        skip_finished();
        load();
    }
    bool done() const override { return c_ >= ncorp_; }
    void Next() override
    {
        i_++;
        skip_finished();
        load();
    }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

  private:
    void skip_finished()
    {
        while (c_ < ncorp_ && i_ >= corp_[c_]->n) {
            c_++;
            i_ = 0;
        }
    }
    void load()
    {
        if (!done())
            value_.assign(corp_[c_]->line[i_]);
    }
    const hg_text_lines *const *corp_;
    int ncorp_;
    int c_ = 0;
    int64_t i_ = 0;
    std::string value_;
};

// The serialized model without the thread count that SentencePiece records among its training
// options (TrainerSpec.num_threads, field 16 of the trainer spec, field 2 of the model), so that
// the bytes, like the pieces, do not depend on it. Protocol buffer wire format: each field is a
// varint key (number << 3 | type) and a varint (type 0), 8 bytes (1), a varint length and as
// many bytes (2), or 4 bytes (5). Input it cannot follow is returned unchanged.
bool read_varint(const std::string &b, size_t *at, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *at < b.size(); shift += 7) {
        unsigned char c = (unsigned char)b[(*at)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

void put_varint(std::string *b, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        b->push_back((char)(v | 0x80));
    b->push_back((char)v);
}

// Skip the value of a field of wire type `type` at *at; false when it does not fit.
bool skip_value(const std::string &b, size_t *at, uint64_t type)
{
    uint64_t v;
    switch (type) {
    case 0:
        return read_varint(b, at, &v);
    case 1:
    case 5:
        *at += type == 1 ? 8 : 4;
        return *at <= b.size();
    case 2:
        if (!read_varint(b, at, &v) || v > b.size() - *at)
            return false;
        *at += v;
        return true;
    default:
        return false;
    }
}

std::string without_thread_count(const std::string &model)
{
    size_t at = 0;
    while (at < model.size()) {
        size_t field_start = at;
        uint64_t key, len;
        if (!read_varint(model, &at, &key))
            return model;
        if (key != (2 << 3 | 2)) { // not the trainer spec
            if (!skip_value(model, &at, key & 7))
                return model;
            continue;
        }
        if (!read_varint(model, &at, &len) || len > model.size() - at)
            return model;
        const std::string spec = model.substr(at, len);
        std::string kept;
        for (size_t p = 0; p < spec.size();) {
            size_t start = p;
            uint64_t k;
            if (!read_varint(spec, &p, &k) || !skip_value(spec, &p, k & 7))
                return model;
            if (k != (16 << 3 | 0))
                kept.append(spec, start, p - start);
        }
        std::string out = model.substr(0, field_start);
        put_varint(&out, key);
        put_varint(&out, kept.size());
        out += kept;
        out.append(model, at + len, std::string::npos);
        return out;
    }
    return model;
}

// A model from serialized bytes (taken over); HG_EINVAL naming `what` when SentencePiece
// refuses them.
int make_model(hg_spm **out, std::string &&bytes, const char *what)
{
    hg_spm *s = new hg_spm;
    s->bytes = std::move(bytes);
    sentencepiece::util::Status st = s->sp.LoadFromSerializedProto(s->bytes);
    if (!st.ok()) {
        std::string m = one_line(st);
        delete s;
        return HG_ERRORF(HG_EINVAL, "%s: not a SentencePiece model (%s)", what, m.c_str());
    }
    *out = s;
    return HG_OK;
}

int out_of_memory(const char *what)
{
    return HG_ERRORF(HG_ENOMEM, "out of memory in SentencePiece (%s)", what);
}

int unexpected(const char *what)
{
    return HG_ERRORF(HG_EINVAL, "SentencePiece failed unexpectedly (%s)", what);
}

// The ids as a malloc'd int32 array (one element at least, so that no ids is not NULL).
int32_t *copy_ids(const std::vector<int> &ids)
{
    int32_t *d = static_cast<int32_t *>(malloc((ids.empty() ? 1 : ids.size()) * sizeof *d));
    if (d)
        for (size_t i = 0; i < ids.size(); i++)
            d[i] = (int32_t)ids[i];
    return d;
}

} // namespace

extern "C" int hg_spm_train(hg_spm **out, const hg_text_lines *const *corp, int ncorp,
                            int vocab_size, int threads)
{
    *out = NULL;
    if (ncorp < 1 || !corp)
        return HG_ERRORF(HG_EINVAL, "SentencePiece training: no corpus given");
    int64_t lines = 0;
    for (int c = 0; c < ncorp; c++)
        lines += corp[c]->n;
    if (lines == 0)
        return HG_ERRORF(HG_EINVAL, "SentencePiece training: the corpora hold no lines");
    if (vocab_size < 4)
        return HG_ERRORF(HG_EINVAL, "SentencePiece training: vocabulary size %d is below 4",
                         vocab_size);
    if (threads < 1)
        return HG_ERRORF(HG_EINVAL, "SentencePiece training: %d threads", threads);
    try {
        // The map form of the arguments: the string form logs its command line before it
        // reads minloglevel.
        std::unordered_map<std::string, std::string> args = {
            {"model_type", "bpe"},
            {"vocab_size", std::to_string(vocab_size)},
            {"character_coverage", "1.0"},
            {"num_threads", std::to_string(HG_MIN(threads, 128))}, // SentencePiece's limit
            {"minloglevel", "2"}, // errors come back as statuses; no progress on stderr
        };
        LinesIterator it(corp, ncorp);
        std::string bytes;
        sentencepiece::util::Status st =
            sentencepiece::SentencePieceTrainer::Train(args, &it, &bytes);
        if (!st.ok())
            return HG_ERRORF(HG_EINVAL, "SentencePiece training: %s", one_line(st).c_str());
        return make_model(out, without_thread_count(bytes), "the trained model");
    } catch (const std::bad_alloc &) {
        return out_of_memory("training");
    } catch (...) {
        return unexpected("training");
    }
}

extern "C" int hg_spm_load(hg_spm **out, const char *path)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot open: %s", path, strerror(errno));
    try {
        std::string bytes;
        char chunk[1 << 16];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
            bytes.append(chunk, got);
        int err = ferror(f) ? errno : 0;
        fclose(f);
        if (err)
            return HG_ERRORF(HG_EIO, "%s: read error: %s", path, strerror(err));
        return make_model(out, std::move(bytes), path);
    } catch (const std::bad_alloc &) {
        fclose(f);
        return out_of_memory(path);
    } catch (...) {
        fclose(f);
        return unexpected(path);
    }
}

extern "C" int hg_spm_load_bytes(hg_spm **out, const void *data, size_t n)
{
    *out = NULL;
    if (!data && n)
        return HG_ERRORF(HG_EINVAL, "SentencePiece model: NULL data");
    try {
        return make_model(out, std::string(static_cast<const char *>(data), n),
                          "serialized model");
    } catch (const std::bad_alloc &) {
        return out_of_memory("loading");
    } catch (...) {
        return unexpected("loading");
    }
}

extern "C" int hg_spm_save(const hg_spm *s, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return HG_ERRORF(HG_EIO, "%s: cannot create: %s", path, strerror(errno));
    size_t put = fwrite(s->bytes.data(), 1, s->bytes.size(), f);
    int err = put != s->bytes.size() ? errno : 0;
    if (fclose(f) != 0 && !err)
        err = errno;
    if (err) {
        remove(path);
        return HG_ERRORF(HG_EIO, "%s: write error: %s", path, strerror(err));
    }
    return HG_OK;
}

extern "C" const void *hg_spm_bytes(const hg_spm *s, size_t *n)
{
    *n = s->bytes.size();
    return s->bytes.data();
}

extern "C" int hg_spm_vocab_size(const hg_spm *s) { return s->sp.GetPieceSize(); }
extern "C" int hg_spm_bos(const hg_spm *s) { return s->sp.bos_id(); }
extern "C" int hg_spm_eos(const hg_spm *s) { return s->sp.eos_id(); }
extern "C" int hg_spm_unk(const hg_spm *s) { return s->sp.unk_id(); }
extern "C" void hg_spm_free(hg_spm *s) { delete s; }

namespace {

// Lines [lo, hi) of t encoded: their ids one after the other, and each line's count. The first
// line that fails sets bad (its index) and why; the rest are skipped. Catches everything (it
// runs on its own thread).
struct Chunk {
    int64_t lo = 0, hi = 0, bad = -1;
    std::vector<int32_t> ids;
    std::vector<int64_t> lens;
    std::string why;
    bool no_memory = false;
};

void encode_chunk(const hg_spm *s, const hg_text_lines *t, Chunk *c) noexcept
{
    try {
        std::vector<int> ids;
        c->lens.reserve((size_t)(c->hi - c->lo));
        for (int64_t i = c->lo; i < c->hi; i++) {
            sentencepiece::util::Status st = s->sp.Encode(t->line[i], &ids);
            if (!st.ok()) {
                c->bad = i;
                c->why = one_line(st);
                return;
            }
            c->ids.insert(c->ids.end(), ids.begin(), ids.end());
            c->lens.push_back((int64_t)ids.size());
        }
    } catch (...) {
        c->no_memory = true; // what SentencePiece throws here is allocation failures
    }
}

} // namespace

extern "C" int hg_spm_encode_lines_mt(const hg_spm *s, const hg_text_lines *t, int threads,
                                      hg_token_corpus *out)
{
    memset(out, 0, sizeof *out);
    if (threads < 1)
        return HG_ERRORF(HG_EINVAL, "SentencePiece encoding: %d threads", threads);
    try {
        int64_t n = t->n, nchunks = HG_MAX(1, HG_MIN((int64_t)threads, n / 256));
        std::vector<Chunk> chunk((size_t)nchunks);
        for (int64_t k = 0; k < nchunks; k++) {
            chunk[(size_t)k].lo = n * k / nchunks;
            chunk[(size_t)k].hi = n * (k + 1) / nchunks;
        }
        // chunk 0 on this thread, the others on their own (or here too when one cannot start)
        std::vector<std::thread> pool;
        int64_t started = 1;
        try {
            for (; started < nchunks; started++)
                pool.emplace_back(encode_chunk, s, t, &chunk[(size_t)started]);
        } catch (...) {
        }
        encode_chunk(s, t, &chunk[0]);
        for (int64_t k = started; k < nchunks; k++)
            encode_chunk(s, t, &chunk[(size_t)k]);
        for (std::thread &th : pool)
            th.join();
        size_t total = 0;
        for (const Chunk &c : chunk) {
            if (c.no_memory)
                return out_of_memory("encoding lines");
            if (c.bad >= 0)
                return HG_ERRORF(HG_EINVAL, "line %lld: SentencePiece cannot encode it (%s)",
                                 (long long)(c.bad + 1), c.why.c_str());
            total += c.ids.size();
        }
        out->off = static_cast<int64_t *>(malloc(((size_t)n + 1) * sizeof *out->off));
        out->ids = static_cast<int32_t *>(malloc((total ? total : 1) * sizeof(int32_t)));
        if (!out->off || !out->ids) {
            hg_token_corpus_free(out);
            return out_of_memory("encoding lines");
        }
        int64_t i = 0;
        size_t at = 0;
        out->off[0] = 0;
        for (const Chunk &c : chunk) {
            memcpy(out->ids + at, c.ids.data(), c.ids.size() * sizeof(int32_t));
            at += c.ids.size();
            for (int64_t len : c.lens) {
                out->off[i + 1] = out->off[i] + len;
                i++;
            }
        }
        out->n = n;
        return HG_OK;
    } catch (const std::bad_alloc &) {
        return out_of_memory("encoding lines");
    } catch (...) {
        return unexpected("encoding lines");
    }
}

extern "C" int hg_spm_encode_lines(const hg_spm *s, const hg_text_lines *t, hg_token_corpus *out)
{
    return hg_spm_encode_lines_mt(s, t, 1, out);
}

extern "C" int hg_spm_encode(const hg_spm *s, const char *text, int32_t **ids, int64_t *n)
{
    *ids = NULL;
    *n = 0;
    try {
        std::vector<int> v;
        sentencepiece::util::Status st = s->sp.Encode(text, &v);
        if (!st.ok())
            return HG_ERRORF(HG_EINVAL, "SentencePiece cannot encode the text (%s)",
                             one_line(st).c_str());
        if (!(*ids = copy_ids(v)))
            return out_of_memory("encoding");
        *n = (int64_t)v.size();
        return HG_OK;
    } catch (const std::bad_alloc &) {
        return out_of_memory("encoding");
    } catch (...) {
        return unexpected("encoding");
    }
}

extern "C" int hg_spm_decode(const hg_spm *s, const int32_t *ids, int64_t n, char **text)
{
    *text = NULL;
    int size = s->sp.GetPieceSize();
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= size)
            return HG_ERRORF(HG_EINVAL, "SentencePiece decode: id %d at %lld is not in [0, %d)",
                             (int)ids[i], (long long)i, size);
    try {
        std::vector<int> v(ids, ids + n);
        std::string out;
        sentencepiece::util::Status st = s->sp.Decode(v, &out);
        if (!st.ok())
            return HG_ERRORF(HG_EINVAL, "SentencePiece cannot decode the ids (%s)",
                             one_line(st).c_str());
        *text = static_cast<char *>(malloc(out.size() + 1));
        if (!*text)
            return out_of_memory("decoding");
        memcpy(*text, out.c_str(), out.size() + 1);
        return HG_OK;
    } catch (const std::bad_alloc &) {
        return out_of_memory("decoding");
    } catch (...) {
        return unexpected("decoding");
    }
}

extern "C" void hg_token_corpus_free(hg_token_corpus *c)
{
    free(c->off);
    free(c->ids);
    memset(c, 0, sizeof *c);
}
