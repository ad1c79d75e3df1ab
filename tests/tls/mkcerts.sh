#!/bin/sh
# Certificates for the TLS interop tests, made with the openssl CLI into DIR:
#   ca.pem ca.key           a CA (CN=sockstack test CA)
#   client.pem client.key   a client certificate signed by the CA
#   expired.pem expired.key a self-signed server certificate for localhost
#                           that expired on 2020-01-02 (openssl ca -startdate
#                           / -enddate: no clock tricks)
set -eu
d=$1
cd "$d"
cat > ca.cnf <<'CNF'
[ ca ]
default_ca = test
[ test ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = copy
x509_extensions = leaf
[ any ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:TRUE
subjectAltName = DNS:localhost,IP:127.0.0.1
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = localhost
CNF
: > index.txt
echo 01 > serial
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=sockstack test CA" -keyout ca.key -out ca.pem
q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=client" -keyout client.key -out client.csr
q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 30 -out client.pem
q openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -config ca.cnf -keyout expired.key -out expired.csr
q openssl ca -batch -config ca.cnf -selfsign -keyfile expired.key -in expired.csr \
    -startdate 20200101000000Z -enddate 20200102000000Z -out expired.pem
chmod 600 ca.key client.key expired.key
