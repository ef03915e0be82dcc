// Swagger UI for /docs: the OpenAPI document of this origin only. An admin token given as
// ?token= in the page address is sent as a bearer header with that one request (not in its URL).
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  const openapiUrl = new URL(root.dataset.openapiUrl, location.href).href;
  const token = new URLSearchParams(location.search).get("token");
  window.ui = SwaggerUIBundle({
    url: openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge from the public validator: the page contacts this origin only.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: (request) => {
      if (token && request.url === openapiUrl) {
        request.headers.Authorization = `Bearer ${token}`;
      }
      return request;
    },
  });
});
