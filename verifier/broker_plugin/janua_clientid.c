/* janua_clientid: a mosquitto 2.0 plugin for janua's mutual-TLS listeners (docs/mqtt.md section 2).
 *
 * It admits a client only if its MQTT client id is exactly the common name (CN) of the certificate it
 * presented in the TLS handshake and the user name it sent, if any, is that CN too. The user name is then
 * set to the CN, so `%u` in the listener's ACL file is the device id. Anything else is refused with CONNACK
 * "not authorized" (0x05; 0x87 for MQTT 5) before the broker looks up the client id, so a refused client
 * never takes over a session.
 *
 * Load it per listener (per_listener_settings true) on a listener with require_certificate true and WITHOUT
 * use_identity_as_username / use_subject_as_username / use_username_as_clientid: mosquitto 2.0 does not fire
 * MOSQ_EVT_BASIC_AUTH for a listener that takes the identity from the certificate (its CONNECT handling treats
 * such clients as already authenticated), and use_username_as_clientid replaces the client id before any
 * plugin sees it. An MQTT 5 client that asks for extended authentication gets no basic-auth event either; this
 * plugin registers no extended-auth handler, so the broker refuses it (bad authentication method).
 *
 * Build: gcc -shared -fPIC -O2 -Wall -o janua_clientid.so janua_clientid.c -lcrypto
 * (headers: Debian mosquitto-dev, libmosquitto-dev, libssl-dev)
 */
#include <string.h>

#include <openssl/x509.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define CN_MAX 64   /* RFC 5280 ub-common-name */

/* The certificate's only CN, NUL-terminated, into out. -1 if it has none, more than one, an embedded NUL,
 * or one longer than CN_MAX. */
static int certificate_cn(X509 *cert, char *out, size_t outlen)
{
	X509_NAME *name = X509_get_subject_name(cert);
	ASN1_STRING *value;
	int i, len;

	if(name == NULL) return -1;
	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if(i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) return -1;
	value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	if(value == NULL) return -1;
	len = ASN1_STRING_length(value);
	if(len <= 0 || (size_t)len >= outlen || memchr(ASN1_STRING_get0_data(value), 0, (size_t)len)) return -1;
	memcpy(out, ASN1_STRING_get0_data(value), (size_t)len);
	out[len] = '\0';
	return 0;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ev = event_data;
	const char *id = mosquitto_client_id(ev->client);
	char cn[CN_MAX + 1];
	X509 *cert;
	int found;

	(void)event;
	(void)userdata;
	cert = mosquitto_client_certificate(ev->client);
	if(cert == NULL){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "janua_clientid: refused %s: no client certificate",
				id ? id : "?");
		return MOSQ_ERR_AUTH;
	}
	found = certificate_cn(cert, cn, sizeof(cn)) == 0;
	X509_free(cert);
	if(!found){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "janua_clientid: refused %s: the certificate has no single CN",
				id ? id : "?");
		return MOSQ_ERR_AUTH;
	}
	if(id == NULL || strcmp(id, cn) != 0){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "janua_clientid: refused client id %s: the certificate is %s",
				id ? id : "?", cn);
		return MOSQ_ERR_AUTH;
	}
	if(ev->username != NULL && strcmp(ev->username, cn) != 0){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "janua_clientid: refused %s: user name is not the certificate CN",
				cn);
		return MOSQ_ERR_AUTH;
	}
	if(ev->username == NULL && mosquitto_set_username(ev->client, cn) != MOSQ_ERR_SUCCESS){
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
		int option_count)
{
	(void)options;
	(void)option_count;
	*userdata = identifier;   /* one init per listener that loads the plugin; no global state */
	return mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	mosquitto_callback_unregister((mosquitto_plugin_id_t *)userdata, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	return MOSQ_ERR_SUCCESS;
}
