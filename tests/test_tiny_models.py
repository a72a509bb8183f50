"""The tiny fixtures themselves load through from_pretrained and apply the chat template."""

from transformers import AutoModelForCausalLM, AutoTokenizer


def test_tiny_lm_round_trips(tiny_lm_dir):
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    ids = tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    out = model(ids)
    assert out.logits.shape[-1] == len(tok)
    assert tok.decode(ids[0]).endswith("<|im_start|>assistant\n")
