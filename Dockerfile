# One image for the gateway and the engine simulator (docker-compose.yml runs both).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wire wire
COPY gateway gateway
COPY router router
COPY cache cache
COPY moderation moderation
COPY pricing pricing
COPY enginesim enginesim
RUN pip install --no-cache-dir .
EXPOSE 8080
ENTRYPOINT ["tollgate"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml", "--host", "0.0.0.0", "--port", "8080"]
