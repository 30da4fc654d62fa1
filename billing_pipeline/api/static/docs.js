// The OpenAPI page: Swagger UI from the app itself (swagger-ui-bundle), no inline script, nothing from the
// internet (the validator badge would call validator.swagger.io: off).
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
